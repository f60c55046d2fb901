"""needle.viz: DOT text of the graph and its backward, collapsing, module clusters, rendering.

Expected node and edge counts are worked out by hand from the ops each graph uses (and,
for gradient graphs, from those ops' ``gradient`` methods); the DOT text is read back
with pydot, an independent parser.
"""

from __future__ import annotations

import shutil
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pydot
import pytest

import needle as ndl
from needle import autograd, nn, viz
from needle import graph as ad
from needle.errors import DTypeError, GraphError

# pydot builds its parser with pyparsing names that newer pyparsing deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAS_DOT, reason="Graphviz's `dot` program is missing: apt-get install graphviz"
)

FORWARD = "#dbe9f6"
GRAD_OP, GRAD_LEAF = "#fcbba1", "#fee0d2"
GRAD2_LEAF = "#efedf5"


def t(values, requires_grad=True):
    return ndl.Tensor(np.asarray(values, dtype=np.float64), dtype="float64",
                      requires_grad=requires_grad)


class Parsed:
    """Nodes, edges and clusters of a DOT text, read back with pydot."""

    def __init__(self, text: str) -> None:
        graphs = pydot.graph_from_dot_data(text)
        assert graphs is not None and len(graphs) == 1, "pydot could not parse the DOT text"
        g = graphs[0]
        self.title = _unquote(g.get_attributes().get("label") or
                              (g.get_graph_defaults()[0].get("label", "")
                               if g.get_graph_defaults() else ""))
        self.nodes: dict[str, dict] = {}
        self.clusters: dict[str, set[str]] = {}
        stack = [(g, None)]
        while stack:
            sub, cluster = stack.pop()
            for node in sub.get_nodes():
                name = node.get_name()
                if name in ("node", "edge", "graph"):
                    continue
                attrs = {k: _unquote(v) for k, v in node.get_attributes().items()}
                self.nodes[name] = attrs
                if cluster is not None:
                    self.clusters[cluster].add(name)
            for child in sub.get_subgraphs():
                label = _unquote(child.get_attributes().get("label", ""))
                if not label:  # pydot keeps `label=...;` statements as graph defaults
                    for d in child.get_graph_defaults() or []:
                        label = _unquote(d.get("label", label))
                self.clusters[label] = set()
                stack.append((child, label))
                if cluster is not None:
                    self.clusters.setdefault("parents", set()).add(f"{label}<{cluster}")
        self.edges = []
        for e in g.get_edges():
            attrs = {k: _unquote(v) for k, v in e.get_attributes().items()}
            src, dst = e.get_source(), e.get_destination()
            if attrs.get("dir") == "back":    # drawn from dst to src
                src, dst = dst, src
            self.edges.append((src, dst, attrs))

    def label(self, name: str) -> str:
        return self.nodes[name]["label"].replace("\\n", "\n")

    def named(self, first_line: str) -> list[str]:
        return [n for n in self.nodes if self.label(n).split("\n")[0] == first_line]

    def graph_edges(self):
        return [e for e in self.edges if e[2].get("label") != "grad"]

    def grad_links(self):
        return [e for e in self.edges if e[2].get("label") == "grad"]

    def filled(self, colour: str) -> list[str]:
        return [n for n, a in self.nodes.items() if a.get("fillcolor") == colour]


def _unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


# ----------------------------------------------------------------------------------------------
# Small known graphs


def test_diamond_is_drawn_once_per_node():
    x = t([1.0, 2.0])
    b = ndl.exp(x)
    c = x * 2.0
    d = b * c
    p = Parsed(viz.to_dot(d))
    assert len(p.nodes) == 4
    assert len(p.edges) == 4
    (xn,) = p.named("input (requires grad)")
    (bn,) = p.named("Exp")
    (cn,) = p.named("MulScalar(scalar=2.0)")
    (dn,) = p.named("EWiseMul")
    assert sorted((s, e) for s, e, _ in p.edges) == sorted(
        [(xn, bn), (xn, cn), (bn, dn), (cn, dn)])


def test_x_times_x_plus_x_times_y():
    x, y = t([1.0, 2.0, 3.0]), t([4.0, 5.0, 6.0])
    z = x * x + x * y
    p = Parsed(viz.to_dot(z))
    assert len(p.nodes) == 5        # x, y, x*x, x*y, +
    assert len(p.edges) == 6        # x*x reads x twice: two edges
    muls = p.named("EWiseMul")
    assert len(muls) == 2
    inputs = p.named("input (requires grad)")
    assert len(inputs) == 2
    into = {m: sorted(s for s, d, _ in p.edges if d == m) for m in muls}
    square = next(m for m in muls if len(set(into[m])) == 1)
    (xn,) = set(into[square])
    assert into[square] == [xn, xn]
    (add,) = p.named("EWiseAdd")
    assert sorted(s for s, d, _ in p.edges if d == add) == sorted(muls)


def test_labels_carry_ops_arguments_shapes_and_dtypes():
    a = t(np.ones((2, 3)))
    w = t(np.ones((3, 4)))
    s = (a @ w).sum(axes=(1,))
    r = s.reshape((2, 1)).broadcast_to((2, 5))
    p = Parsed(viz.to_dot(r))
    labels = {p.label(n) for n in p.nodes}
    assert "MatMul\n(2, 4) float64" in labels
    assert "Summation(axes=(1,))\n(2,) float64" in labels
    assert "Reshape(shape=(2, 1))\n(2, 1) float64" in labels
    assert "BroadcastTo(shape=(2, 5))\n(2, 5) float64" in labels
    # Default arguments are left out: keepdims=False is not shown.
    assert not any("keepdims" in label for label in labels)
    p = Parsed(viz.to_dot(r, show_shapes=False))
    assert {p.label(n) for n in p.nodes} >= {"MatMul", "Summation(axes=(1,))"}


def test_leaves_are_marked_by_kind():
    w = nn.Parameter(np.ones((2, 2)), dtype="float64")
    x = t(np.ones((2, 2)))
    c = t(np.full((2, 2), 3.0), requires_grad=False)
    out = (w * x + c) * 0.5
    p = Parsed(viz.to_dot(out))
    assert p.named("parameter") and p.named("input (requires grad)") and p.named("constant")
    colours = {p.label(n).split("\n")[0]: p.nodes[n]["fillcolor"] for n in p.nodes}
    assert len({colours["parameter"], colours["input (requires grad)"], colours["constant"],
                colours["EWiseMul"]}) == 4
    one = t(2.5, requires_grad=False)
    p = Parsed(viz.to_dot(x * one))
    assert "constant = 2.5\n() float64" in {p.label(n) for n in p.nodes}


def test_graph_mode_variables_are_shown_by_name():
    x1, x2 = ad.Variable("x1"), ad.Variable("x2")
    y = x1 * x2 + x1
    p = Parsed(viz.to_dot(y))
    assert len(p.nodes) == 4 and len(p.edges) == 4
    assert p.label(p.named("x1")[0]) == "x1\nplaceholder"
    assert p.label(p.named("x2")[0]) == "x2\nplaceholder"
    assert p.label(p.named("EWiseMul")[0]) == "EWiseMul\nnot computed"
    # Gradient nodes of graph mode, given as a mapping, are linked to their Variables.
    g1, g2 = ad.gradients(y, [x1, x2])
    p = Parsed(viz.to_dot(y, backward={x1: g1, x2: g2}))
    links = p.grad_links()
    assert sorted(d for _, d, _ in links) == sorted(p.named("x1") + p.named("x2"))


def test_to_dot_computes_nothing_in_lazy_mode():
    autograd.LAZY_MODE = True
    try:
        x = t([1.0, 2.0])
        y = (x * 2.0).sum()
        p = Parsed(viz.to_dot(y))
    finally:
        autograd.LAZY_MODE = False
    assert y.cached_data is None and y.inputs[0].cached_data is None
    assert p.label(p.named("Summation")[0]) == "Summation\nnot computed"


def test_tuple_ops_are_drawn():
    x = t(np.ones((3, 2)))
    parts = ndl.split(x, 0)
    y = ndl.stack([parts[0], parts[2]], 0)
    p = Parsed(viz.to_dot(y))
    names = [p.label(n).split("\n")[0] for n in p.nodes]
    # x, Split, two TupleGetItem, MakeTensorTuple (stack's argument), Stack
    assert sorted(names) == sorted([
        "input (requires grad)", "Split(axis=0)", "TupleGetItem(index=0)",
        "TupleGetItem(index=2)", "MakeTensorTuple", "Stack(axis=0)"])
    assert len(p.edges) == 6
    assert p.label(p.named("Split(axis=0)")[0]) == "Split(axis=0)\ntuple of 3 \u00d7 (2,) float64"


# ----------------------------------------------------------------------------------------------
# The backward graph


def test_backward_of_x_times_x_plus_x_times_y():
    """Worked out from EWiseAdd/EWiseMul.gradient: with the seed c (ones),
    adj(x*x) = adj(x*y) = c; x*x sends c*x twice, x*y sends c*y to x and c*x to y;
    x's three partials are summed by two adds. Gradient graph: c, four EWiseMul, two
    EWiseAdd (7 nodes, 12 edges); links: c to z, x*x and x*y; c*x to y; the sum to x."""
    x, y = t([1.0, 2.0, 3.0]), t([4.0, 5.0, 6.0])
    z = x * x + x * y
    with viz.record_backward():
        z.backward()
    p = Parsed(viz.to_dot(z, backward=True))
    assert len(p.nodes) == 5 + 7
    grad_nodes = p.filled(GRAD_OP) + p.filled(GRAD_LEAF)
    assert len(grad_nodes) == 7
    assert sorted(p.label(n).split("\n")[0] for n in grad_nodes) == (
        ["EWiseAdd"] * 2 + ["EWiseMul"] * 4 + ["constant"])
    assert len(p.graph_edges()) == 6 + 12
    links = p.grad_links()
    assert len(links) == 5
    (seed,) = p.filled(GRAD_LEAF)
    assert sorted(p.label(d).split("\n")[0] for s, d, _ in links if s == seed) == [
        "EWiseAdd", "EWiseMul", "EWiseMul"]
    # The gradient drawn for x is the Tensor x.grad.
    x_node = next(d for s, d, _ in links if p.label(s).startswith("EWiseAdd"))
    assert p.label(x_node).startswith("input")
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + y.numpy())


def test_backward_without_recording_links_the_leaves():
    x, y = t([1.0, 2.0, 3.0]), t([4.0, 5.0, 6.0])
    z = x * x + x * y
    z.backward()
    assert "_viz_adjoints" not in z.__dict__
    p = Parsed(viz.to_dot(z, backward=True))
    links = p.grad_links()
    assert len(links) == 2
    assert all(p.label(d).startswith("input") for _, d, _ in links)
    # x.grad is (c*y + c*x) + c*x, y.grad another c*x; with the seed c: 7 gradient nodes.
    assert len(p.filled(GRAD_OP) + p.filled(GRAD_LEAF)) == 7


def test_backward_needs_a_backward_call():
    x = t([1.0, 2.0])
    with pytest.raises(GraphError, match="call backward"):
        viz.to_dot((x * x).sum(), backward=True)


def test_recording_changes_no_gradient():
    x, y = t([1.0, 2.0, 3.0]), t([4.0, 5.0, 6.0])
    z = ndl.exp(x * y).sum()
    z.backward()
    plain = x.grad.numpy(), y.grad.numpy()
    with viz.record_backward():
        z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), plain[0])
    np.testing.assert_array_equal(y.grad.numpy(), plain[1])
    assert z.inputs[0].grad is None          # inner nodes get no .grad
    assert autograd._BACKWARD_RECORD.sink is None
    assert len(z.__dict__["_viz_adjoints"]) == 5   # x, y, x*y, exp, sum


def _mlp():
    np.random.seed(0)
    X = t(np.random.randn(5, 3), requires_grad=False)
    W1 = nn.Parameter(np.random.randn(3, 4), dtype="float64")
    W2 = nn.Parameter(np.random.randn(4, 2), dtype="float64")
    loss = ndl.logsumexp(ndl.relu(X @ W1) @ W2, axes=(1,)).sum()
    return X, W1, W2, loss


def test_two_layer_mlp_loss():
    X, W1, W2, loss = _mlp()
    p = Parsed(viz.to_dot(loss))
    # X, W1, MatMul, ReLU, W2, MatMul, LogSumExp, Summation
    assert len(p.nodes) == 8 and len(p.edges) == 7
    assert len(p.named("parameter")) == 2 and len(p.named("constant")) == 1
    assert p.label(p.named("LogSumExp(axes=(1,))")[0]) == "LogSumExp(axes=(1,))\n(5,) float64"


def _gradient_nodes(grads, forward):
    """Nodes behind ``grads`` that are not forward nodes (an independent walk)."""
    seen, stack = set(), list(grads)
    while stack:
        n = stack.pop()
        if n in forward or n in seen:
            continue
        seen.add(n)
        stack.extend(n.inputs)
    return seen


def test_two_layer_mlp_backward():
    X, W1, W2, loss = _mlp()
    loss.backward()
    forward = set(autograd.find_topo_sort([loss]))
    expected = _gradient_nodes([W1.grad, W2.grad], forward)
    p = Parsed(viz.to_dot(loss, backward=True))
    assert len(p.filled(GRAD_OP) + p.filled(GRAD_LEAF)) == len(expected)
    assert len(p.nodes) == 8 + len(expected)
    # One link per parameter, from a gradient box of the parameter's shape.
    links = p.grad_links()
    assert len(links) == 2
    for src, dst, _ in links:
        assert p.label(dst).startswith("parameter")
        assert p.label(src).split("\n")[-1] == p.label(dst).split("\n")[-1]
    # Inside record_backward every node that requires grad gets a link: all but X.
    with viz.record_backward():
        loss.backward()
    p = Parsed(viz.to_dot(loss, backward=True))
    assert len(p.grad_links()) == 7


def test_gradient_of_gradient_gets_its_own_colour():
    """z = a*a + a*b; g = dz/da = 2a + b. Differentiating g: every node of g's graph gets
    the seed (adds pass it on), and the second derivatives 2 (for a) and 1 (for b) are
    computed as detached constants."""
    a, b = t([3.0]), t([2.0])
    z = a * a + a * b
    with viz.record_backward():
        z.backward()
        g = a.grad
        g.backward()
    p = Parsed(viz.to_dot(z, g, backward=True))
    second = p.filled(GRAD2_LEAF)
    assert sorted(p.label(n) for n in second) == [
        "constant = 1\n(1,) float64", "constant = 1\n(1,) float64",
        "constant = 2\n(1,) float64"]
    purple = [e for e in p.grad_links() if e[0] in second]
    assert len(purple) == 7   # the seed to g's 5 nodes, 2 to a, 1 to b
    (two,) = [n for n in second if "= 2" in p.label(n)]
    (target,) = [d for s, d, _ in purple if s == two]
    assert p.label(target).startswith("input")


# ----------------------------------------------------------------------------------------------
# Large graphs


def _tanh_chain(n):
    x = t(np.ones(4))
    y = x
    for _ in range(n):
        y = ndl.tanh(y)
    return x, y


def test_runs_of_the_same_op_collapse_beyond_max_nodes():
    x, y = _tanh_chain(20)
    assert len(Parsed(viz.to_dot(y)).nodes) == 21
    p = Parsed(viz.to_dot(y, max_nodes=5))
    assert len(p.nodes) == 2 and len(p.edges) == 1
    (box,) = p.named("Tanh \u00d720")
    assert p.nodes[box]["peripheries"] == "2"
    assert "21 nodes drawn as 2 boxes" in p.title and "same op" in p.title


def test_mixed_chains_collapse_with_op_counts():
    x = t(np.ones(3))
    c = t(np.full(3, 0.5), requires_grad=False)
    y = x
    for i in range(30):
        y = y + c if i % 3 == 0 else (y * c if i % 3 == 1 else ndl.tanh(y))
    p = Parsed(viz.to_dot(y, max_nodes=10))
    assert len(p.nodes) == 3      # x, c, one chain box
    (box,) = p.named("chain of 30 ops")
    assert "EWiseAdd \u00d710" in p.label(box) and "Tanh \u00d710" in p.label(box)
    (edge,) = [e for e in p.edges if e[0] in p.named("constant")]
    assert edge[2]["label"] == "\u00d720"


def test_a_chain_and_its_backward_collapse_to_two_boxes():
    x, y = _tanh_chain(50)
    y.sum().backward()
    p = Parsed(viz.to_dot(y, backward=True, max_nodes=20))
    assert len(p.filled(FORWARD)) == 1
    assert len(p.grad_links()) == 1


def test_wide_graphs_keep_the_nodes_nearest_the_output():
    xs = [t([float(i)]) for i in range(40)]
    total = xs[0]
    for x in xs[1:]:
        total = total + x * 2.0
    p = Parsed(viz.to_dot(total, max_nodes=30))
    assert len(p.nodes) == 30
    (more,) = [n for n in p.nodes if "more nodes not drawn" in p.label(n)]
    assert "only the 29 boxes nearest the outputs" in p.title
    assert any(s == more for s, _, _ in p.edges)


def test_pictures_too_slow_to_lay_out_are_collapsed():
    """A 240-op chain whose two constants feed 120 of its ops, with its backward: 425 boxes,
    under max_nodes, but dot would route tens of thousands of edge segments (minutes)."""
    x = t(np.ones(8))
    c_add = t(np.full(8, 0.01), requires_grad=False)
    c_mul = t(np.full(8, 0.9), requires_grad=False)
    y = x
    for i in range(240):
        k = i % 4
        y = y + c_add if k == 0 else y * c_mul if k == 1 else ndl.tanh(y) if k == 2 else y * 1.1
    y.sum().backward()
    p = Parsed(viz.to_dot(y, backward=True))
    assert "425 nodes drawn as" in p.title and "collapsed" in p.title
    assert len(p.nodes) < 20
    assert len(Parsed(viz.to_dot(y, backward=True, max_nodes=None)).nodes) == 425


@pytest.mark.slow
def test_a_100000_op_chain_collapses_quickly():
    x, y = _tanh_chain(100_000)
    start = time.perf_counter()
    text = viz.to_dot(y)
    elapsed = time.perf_counter() - start
    p = Parsed(text)
    assert len(p.nodes) == 2 and p.named("Tanh \u00d7100000")
    # A hang guard, not a speed measurement: a few seconds on an idle machine.
    assert elapsed < 30, f"to_dot took {elapsed:.1f} s on a 100,000-op chain"
    if HAS_DOT:
        svg = viz.render(y, path=str(_tmp() / "chain.svg"))
        assert "Tanh" in open(svg).read()


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="needle-viz-"))


# ----------------------------------------------------------------------------------------------
# Modules


def _model_and_loss(record=True):
    np.random.seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    X = ndl.Tensor(np.random.randn(5, 3), requires_grad=False)
    if record:
        with viz.record_modules(model):
            out = model(X).sum()
    else:
        out = model(X).sum()
    return model, out


def test_nodes_are_grouped_by_the_module_that_made_them():
    model, out = _model_and_loss()
    p = Parsed(viz.to_dot(out, group_by_module=True))
    first = p.clusters["modules.0: Linear"]
    # weight, bias (already (1, out)), MatMul, BroadcastTo, EWiseAdd (Linear.forward)
    assert sorted(p.label(n).split("\n")[0] for n in first) == [
        "BroadcastTo(shape=(5, 4))", "EWiseAdd", "MatMul",
        "modules.0.bias", "modules.0.weight"]
    assert [p.label(n).split("\n")[0] for n in p.clusters["modules.1: ReLU"]] == ["ReLU"]
    assert len(p.clusters["modules.2: Linear"]) == 5
    assert p.clusters["Sequential"] == set()      # its nodes are all in the children
    assert {"modules.0: Linear<Sequential", "modules.2: Linear<Sequential"} <= p.clusters[
        "parents"]
    in_clusters = set().union(*(v for k, v in p.clusters.items() if k != "parents"))
    outside = [p.label(n).split("\n")[0] for n in p.nodes if n not in in_clusters]
    assert sorted(outside) == ["Summation", "constant"]     # .sum() and X
    assert p.label(p.named("modules.2.weight")[0]) == "modules.2.weight\nparameter\n(4, 2) float32"


def test_recording_modules_unwraps_them_and_changes_no_value():
    np.random.seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    X = ndl.Tensor(np.random.randn(5, 3), requires_grad=False)
    plain = model(X).numpy()
    with viz.record_modules(model):
        assert "forward" in model.__dict__
        recorded = model(X).numpy()
    np.testing.assert_array_equal(plain, recorded)
    assert "forward" not in model.__dict__
    assert all("forward" not in m.__dict__ for m in model.modules)
    handle = viz.record_modules(model)
    out = model(X).sum()
    handle.remove()
    assert "Sequential" in Parsed(viz.to_dot(out, group_by_module=True)).clusters


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 2)

    def forward(self, x):
        h = x * 3.0                       # the block's own op, before the child
        return ndl.tanh(self.inner(h))    # and after


def test_nested_modules_and_ops_around_a_child():
    np.random.seed(2)
    block = _Block()
    x = ndl.Tensor(np.random.randn(4, 2))      # requires grad, so x * 3 is a node
    with viz.record_modules(block):
        out = block(x)
    p = Parsed(viz.to_dot(out, group_by_module=True))
    own = sorted(p.label(n).split("\n")[0] for n in p.clusters["_Block"])
    assert own == ["MulScalar(scalar=3.0)", "Tanh"]
    assert len(p.clusters["inner: Linear"]) == 5      # weight, bias, MatMul, BroadcastTo, EWiseAdd
    assert "inner: Linear<_Block" in p.clusters["parents"]
    (xn,) = p.named("input (requires grad)")       # the argument belongs to the caller
    assert all(xn not in members for members in p.clusters.values())


class _Scaled(nn.Module):
    def forward(self, x, scale=None):
        return x * scale


def test_keyword_arguments_belong_to_the_caller_and_hooks_still_run():
    module = _Scaled()
    x = ndl.Tensor(np.ones((2, 2)))
    scale = ndl.exp(ndl.Tensor(np.ones((2, 2))))      # made by the caller, passed by keyword
    seen = []
    module.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with viz.record_modules(module):
        assert "_Scaled()" in repr(module)
        out = module(x, scale=scale)
    assert seen == [(2, 2)]
    p = Parsed(viz.to_dot(out, group_by_module=True))
    assert [p.label(n).split("\n")[0] for n in p.clusters["_Scaled"]] == ["EWiseMul"]


def test_group_by_module_needs_records():
    _, out = _model_and_loss(record=False)
    with pytest.raises(GraphError, match="record_modules"):
        viz.to_dot(out, group_by_module=True)
    with pytest.raises(DTypeError, match="nn.Module"):
        viz.record_modules(lambda x: x)


def test_modules_and_backward_together():
    model, out = _model_and_loss()
    out.backward()
    p = Parsed(viz.to_dot(out, group_by_module=True, backward=True))
    assert len(p.grad_links()) == 4      # two weights, two biases
    clustered = set().union(*(v for k, v in p.clusters.items() if k != "parents"))
    assert not clustered & set(p.filled(GRAD_OP))   # gradients belong to no module


# ----------------------------------------------------------------------------------------------
# Errors


def test_bad_arguments():
    x = t([1.0])
    with pytest.raises(viz.VizError, match="at least one"):
        viz.to_dot()
    with pytest.raises(DTypeError, match="int"):
        viz.to_dot(3)
    with pytest.raises(viz.VizError, match="max_nodes"):
        viz.to_dot(x, max_nodes=1)
    with pytest.raises(viz.VizError, match="rankdir"):
        viz.to_dot(x, rankdir="up")
    with pytest.raises(viz.VizError, match=r"\.svg"):
        viz.render(x, path="graph.jpeg")
    assert viz.to_dot([x * 2.0]) == viz.to_dot(x * 2.0)


# ----------------------------------------------------------------------------------------------
# Rendering


@needs_dot
def test_render_writes_svg_and_png(tmp_path):
    x, y = t([1.0, 2.0]), t([3.0, 4.0])
    z = (x * y).sum()
    z.backward()
    svg = viz.render(z, backward=True, path=tmp_path / "g.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = "".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
    assert "EWiseMul" in texts and "Summation" in texts and "grad" in texts
    png = viz.render(z, path=tmp_path / "g.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_render_dot_files_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    z = t([1.0]) * 2.0
    out = viz.render(z, path=tmp_path / "g.dot")
    assert Parsed(open(out).read()).named("MulScalar(scalar=2.0)")


def test_missing_dot_says_how_to_install_and_keeps_the_dot_text(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))       # no `dot` on this PATH
    z = t([1.0]) * 2.0
    with pytest.raises(viz.GraphvizNotFound) as info:
        viz.render(z, path=tmp_path / "g.svg")
    message = str(info.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert str(tmp_path / "g.dot") in message
    assert Parsed((tmp_path / "g.dot").read_text()).named("MulScalar(scalar=2.0)")
    assert not (tmp_path / "g.svg").exists()


def test_missing_graphviz_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)   # import graphviz fails
    with pytest.raises(viz.GraphvizNotFound, match=r"needle\[viz\]"):
        viz.render(t([1.0]) * 2.0, path=tmp_path / "g.png")
    assert (tmp_path / "g.dot").exists()


# ----------------------------------------------------------------------------------------------
# The README's picture


def test_readme_picture_matches_the_readme_code(tmp_path, monkeypatch):
    """docs/mlp_backward.svg is what the README's viz block draws (dot not needed here)."""
    import re
    from collections import Counter
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    blocks = re.findall(r"^```python\n(.*?)^```", (root / "README.md").read_text(),
                        flags=re.S | re.M)
    (block,) = [b for b in blocks if "viz.to_dot(loss, backward=True)" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    p = Parsed((tmp_path / "mlp.dot").read_text())
    want = Counter(line for n in p.nodes for line in p.label(n).split("\n"))
    want.update(e[2]["label"] for e in p.edges if "label" in e[2])
    svg = ET.parse(root / "docs" / "mlp_backward.svg").getroot()
    got = Counter(el.text for el in svg.iter() if el.tag.endswith("text"))
    assert got == want, (
        "docs/mlp_backward.svg is out of date: run the README's viz block, then "
        "`dot -Tsvg mlp.dot -o docs/mlp_backward.svg`")


def test_bench_viz_runs_on_a_short_chain(capsys):
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import bench_viz

    bench_viz.main(["--n-ops", "40", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "| `to_dot(y)` | 43 |" in out           # 40 ops, x and the two constants
    assert "| `to_dot(y, backward=True)` |" in out
