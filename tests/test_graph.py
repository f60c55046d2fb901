"""Graph mode (needle.graph): every op through the Evaluator, against numpy and finite
differences in float64; evaluator reuse, feeds, errors, higher-order gradients, names."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import axes_for, broadcast_shapes, make_values, seeds
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
from needle import graph as ad

EPS = 1e-6


def _feed(xs, arrays):
    return dict(zip(xs, arrays))


def check_op(build, reference, arrays, *, grad=True, atol=1e-6, rtol=1e-5):
    """Forward of ``build`` on Variables vs ``reference`` on numpy arrays; then the gradient
    nodes of ``sum(y * p)`` (p a fed random projection) vs central differences, all run
    through Evaluators in float64."""
    xs = [ad.Variable(f"x{i}") for i in range(len(arrays))]
    y = build(*xs)
    (value,) = ad.Evaluator([y]).run(_feed(xs, arrays))
    expected = np.asarray(reference(*arrays))
    assert value.dtype == np.float64
    assert value.shape == expected.shape
    np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)
    if not grad:
        return
    p = ad.Variable("p")
    proj = np.random.default_rng(7).standard_normal(expected.shape)
    grads = ad.gradients(y * p, xs)
    # Feed only what the gradient graph holds: an extra feed is an error by design.
    in_graph = set(ad.topological_sort(grads))
    feed = {k: v for k, v in {**_feed(xs, arrays), p: proj}.items() if k in in_graph}
    got = ad.Evaluator(grads).run(feed)
    forward = ad.Evaluator([y])
    for k, base in enumerate(arrays):
        numeric = np.zeros(base.shape)
        for j in range(base.size):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[k].reshape(-1)[j] += EPS
            minus[k].reshape(-1)[j] -= EPS
            f_plus = np.sum(forward.run(_feed(xs, plus))[0] * proj)
            f_minus = np.sum(forward.run(_feed(xs, minus))[0] * proj)
            numeric.reshape(-1)[j] = (f_plus - f_minus) / (2 * EPS)
        assert got[k].shape == base.shape, f"gradient {k} has shape {got[k].shape}"
        np.testing.assert_allclose(got[k], numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {k}")


def vals(shape, kind="real", seed=0):
    return make_values(shape, kind, seed)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layernorm(x, k, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


# (id, build on nodes, numpy reference, input arrays)
CASES = [
    ("add", ad.add, np.add, [vals((3, 1)), vals((4,), seed=1)]),
    ("sub", ad.sub, np.subtract, [vals((2, 3)), vals((2, 3), seed=1)]),
    ("mul", ad.mul, np.multiply, [vals((2, 3)), vals((1, 3), seed=1)]),
    ("div", ad.div, np.divide, [vals((2, 3)), vals((2, 3), "pos", 1)]),
    ("add_by_const", lambda a: ad.add_by_const(a, 2.5), lambda a: a + 2.5, [vals((3,))]),
    ("mul_by_const", lambda a: ad.mul_by_const(a, -3), lambda a: a * -3, [vals((3,))]),
    ("div_by_const", lambda a: ad.div_by_const(a, 4.0), lambda a: a / 4.0, [vals((2, 2))]),
    ("matmul_2d", ad.matmul, np.matmul, [vals((3, 4)), vals((4, 2), seed=1)]),
    ("matmul_batched", ad.matmul, np.matmul, [vals((2, 3, 4)), vals((2, 4, 2), seed=1)]),
    ("matmul_bcast", ad.matmul, np.matmul, [vals((2, 3, 4)), vals((4, 2), seed=1)]),
    ("transpose", lambda a: ad.transpose(a, 0, 2), lambda a: np.swapaxes(a, 0, 2),
     [vals((2, 3, 4))]),
    ("transpose_neg", lambda a: ad.transpose(a, -1, -2), lambda a: np.swapaxes(a, -1, -2),
     [vals((2, 3, 4))]),
    ("relu", ad.relu, lambda a: np.maximum(a, 0), [vals((3, 4), "nonzero")]),
    ("sqrt", ad.sqrt, np.sqrt, [vals((3, 2), "pos")]),
    ("log", ad.log, np.log, [vals((3, 2), "pos")]),
    ("exp", ad.exp, np.exp, [vals((3, 2))]),
    ("power_int", lambda a: ad.power(a, 3), lambda a: a ** 3, [vals((2, 3))]),
    ("power_frac", lambda a: ad.power(a, 1.5), lambda a: a ** 1.5, [vals((2, 3), "pos")]),
    ("greater", ad.greater, lambda a, b: (a > b).astype(np.float64),
     [vals((2, 3), "offgrid"), vals((2, 3), "grid", 1)]),
    ("greater_scalar", lambda a: ad.greater(a, 0.0), lambda a: (a > 0).astype(np.float64),
     [vals((4,), "nonzero")]),
    ("zeros_like", ad.zeros_like, np.zeros_like, [vals((2, 3))]),
    ("ones_like", ad.ones_like, np.ones_like, [vals((2, 3))]),
    ("sum_int", lambda a: ad.sum_op(a, 1), lambda a: a.sum(axis=1), [vals((2, 3, 2))]),
    ("sum_tuple_neg", lambda a: ad.sum_op(a, (0, -1)), lambda a: a.sum(axis=(0, -1)),
     [vals((2, 3, 2))]),
    ("sum_keepdim", lambda a: ad.sum_op(a, -2, keepdim=True),
     lambda a: a.sum(axis=-2, keepdims=True), [vals((2, 3, 2))]),
    ("mean_int", lambda a: ad.mean(a, 0), lambda a: a.mean(axis=0), [vals((3, 2))]),
    ("mean_tuple_keep", lambda a: ad.mean(a, (1, 2), keepdim=True),
     lambda a: a.mean(axis=(1, 2), keepdims=True), [vals((2, 3, 2))]),
    ("softmax_last", ad.softmax, lambda a: _softmax(a, -1), [vals((3, 4))]),
    ("softmax_dim0", lambda a: ad.softmax(a, dim=0), lambda a: _softmax(a, 0),
     [vals((3, 4))]),
    ("logsoftmax", ad.logsoftmax, lambda a: np.log(_softmax(a, -1)), [vals((2, 5))]),
    ("layernorm_1", lambda a: ad.layernorm(a, (5,)), lambda a: _layernorm(a, 1),
     [vals((3, 5))]),
    ("layernorm_2", lambda a: ad.layernorm(a, (3, 2), eps=1e-3),
     lambda a: _layernorm(a, 2, 1e-3), [vals((2, 3, 2))]),
    ("broadcast", lambda a: ad.broadcast(a, (3,), (2, 3)),
     lambda a: np.broadcast_to(a, (2, 3)), [vals((3,))]),
    ("broadcast_inner", lambda a: ad.broadcast(a, (3, 1), (2, 3, 4)),
     lambda a: np.broadcast_to(a, (2, 3, 4)), [vals((3, 1))]),
    ("expand_as", ad.expand_as, lambda a, b: np.broadcast_to(a, b.shape),
     [vals((1, 4)), vals((3, 4), seed=1)]),
    # Python operators on nodes, numbers on either side
    ("op_radd", lambda a: 2 + a, lambda a: 2 + a, [vals((3,))]),
    ("op_rsub", lambda a: 2 - a, lambda a: 2 - a, [vals((3,))]),
    ("op_rmul", lambda a: 3 * a, lambda a: 3 * a, [vals((3,))]),
    ("op_rdiv", lambda a: 3 / a, lambda a: 3 / a, [vals((3,), "pos")]),
    ("op_div_num", lambda a: a / 2, lambda a: a / 2, [vals((3,))]),
    ("op_neg", lambda a: -a, np.negative, [vals((3,))]),
    ("op_pow", lambda a: a ** 2, lambda a: a ** 2, [vals((3,))]),
    ("op_matmul", lambda a, b: a @ b, np.matmul, [vals((2, 3)), vals((3, 2), seed=1)]),
    ("op_mixed", lambda a, b: (a - b) * a / (b * b + 1) - 1,
     lambda a, b: (a - b) * a / (b * b + 1) - 1, [vals((2, 2)), vals((2, 2), seed=1)]),
    # matmul with 1-D operands, numpy's rules
    ("matmul_vec_vec", ad.matmul, np.matmul, [vals((4,)), vals((4,), seed=1)]),
    ("matmul_mat_vec", ad.matmul, np.matmul, [vals((3, 4)), vals((4,), seed=1)]),
    ("matmul_vec_mat", ad.matmul, np.matmul, [vals((4,)), vals((4, 2), seed=1)]),
    ("matmul_batch_vec", ad.matmul, np.matmul, [vals((2, 3, 4)), vals((4,), seed=1)]),
    ("matmul_vec_batch", ad.matmul, np.matmul, [vals((3,)), vals((2, 3, 4), seed=1)]),
    # tuple ops on placeholders
    ("stack_0", lambda a, b: ndl.stack([a, b * a], 0), lambda a, b: np.stack([a, b * a], 0),
     [vals((2, 3)), vals((2, 3), seed=1)]),
    ("stack_last", lambda a, b: ndl.stack([a, b, a], -1), lambda a, b: np.stack([a, b, a], -1),
     [vals((3,)), vals((3,), seed=1)]),
    ("split_some_parts", lambda a: ndl.split(a, 1)[0] * ndl.split(a, 1)[-1],
     lambda a: a[:, 0] * a[:, -1], [vals((2, 3))]),
    ("split_one_part_twice", lambda a: (lambda t: t[1] * t[1] + t[-2])(ndl.split(a, 0)),
     lambda a: a[1] * a[1] + a[-2], [vals((3, 2))]),
    ("split_then_stack", lambda a: ndl.stack([ndl.split(a, 0)[i] for i in (2, 0, 1)], 1),
     lambda a: np.stack([a[2], a[0], a[1]], 1), [vals((3, 2))]),
    ("make_tuple_get", lambda a, b: (lambda t: t[0] * t[1] + t[0])(ndl.make_tuple(a, b)),
     lambda a, b: a * b + a, [vals((2, 2)), vals((2, 2), seed=1)]),
    ("fused_add_scalars", lambda a: (lambda t: t[0] * t[1])(ndl.fused_add_scalars(a, 1.0, -2.0)),
     lambda a: (a + 1.0) * (a - 2.0), [vals((2, 3))]),
    ("fused_add_scalars_one", lambda a: ndl.fused_add_scalars(a, 0.5, 3.0)[1] * a,
     lambda a: (a + 3.0) * a, [vals((4,))]),
]


@pytest.mark.parametrize("build, reference, arrays", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_op_forward_and_gradient(build, reference, arrays):
    check_op(build, reference, arrays)


@given(broadcast_shapes(), seeds)
def test_binary_ops_broadcast(shapes, seed):
    a, b = vals(shapes[0], seed=seed), vals(shapes[1], "pos", seed + 1)
    check_op(lambda x, y: x * y + x / y - y, lambda x, y: x * y + x / y - y, [a, b])


@given(st.integers(1, 3).flatmap(lambda n: st.tuples(st.just(n), axes_for(n))), seeds,
       st.booleans())
def test_reductions_any_dims(ndim_axes, seed, keepdim):
    ndim, axes = ndim_axes
    axes = tuple(range(ndim)) if axes is None else axes
    a = vals((2, 3, 2)[:ndim], seed=seed)
    check_op(lambda x: ad.sum_op(x, axes, keepdim) + ad.mean(x, axes, keepdim),
             lambda x: x.sum(axis=axes, keepdims=keepdim) + x.mean(axis=axes, keepdims=keepdim),
             [a])


def test_composite_mlp_graph():
    def ref(x, w1, w2):
        return _softmax(np.maximum(x @ w1, 0) @ w2, -1)

    check_op(lambda x, w1, w2: ad.softmax(ad.relu(x @ w1) @ w2),
             ref, [vals((3, 4)), vals((4, 5), "nonzero", 1), vals((5, 2), seed=2)])


# ----------------------------------------------------------------------------------------------
# The evaluator


def test_evaluator_reuse_over_feeds_and_dtypes():
    x, w = ad.Variable("x"), ad.Variable("w")
    y = ad.sum_op(ad.relu(x @ w), 1)
    (gw,) = ad.gradients(y, [w])
    ev = ad.Evaluator([y, gw])
    rng = np.random.default_rng(0)
    for batch in (1, 3, 5):
        xv, wv = rng.standard_normal((batch, 4)), rng.standard_normal((4, 2))
        yv, gv = ev.run({x: xv, w: wv})
        np.testing.assert_allclose(yv, np.maximum(xv @ wv, 0).sum(1), rtol=1e-12)
        np.testing.assert_allclose(gv, xv.T @ (xv @ wv > 0), rtol=1e-12)
        assert yv.dtype == np.float64
    y32, g32 = ev.run({x: xv.astype(np.float32), w: wv.astype(np.float32)})
    assert y32.dtype == np.float32 and g32.dtype == np.float32
    np.testing.assert_allclose(y32, np.maximum(xv @ wv, 0).sum(1), rtol=1e-5)
    # Nothing is stored in the graph.
    assert all(n.cached_data is None for n in ad.topological_sort([y, gw]))


def test_evaluator_threads():
    x = ad.Variable("x")
    y = ad.exp(x) * x
    (g,) = ad.gradients(y, [x])
    ev = ad.Evaluator([y, g])
    errors = []

    def work(k):
        for _ in range(20):
            xv = np.full((50,), float(k))
            yv, gv = ev.run({x: xv})
            if not (np.allclose(yv, np.exp(xv) * xv) and np.allclose(gv, np.exp(xv) * (xv + 1))):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_missing_input_names_the_variable():
    x1, x2 = ad.Variable("x1"), ad.Variable("weights")
    ev = ad.Evaluator([x1 * x2])
    with pytest.raises(ValueError, match="weights"):
        ev.run({x1: np.ones(2)})


def test_unused_variable_need_not_be_fed():
    x1, x2 = ad.Variable("x1"), ad.Variable("x2")
    y = x1 * 2
    (g1, g2) = ad.gradients(y, [x1, x2])
    (gv,) = ad.Evaluator([g1]).run({x1: np.ones(3)})
    np.testing.assert_array_equal(gv, np.full(3, 2.0))
    (zv,) = ad.Evaluator([g2]).run({x2: np.ones((2, 2))})
    np.testing.assert_array_equal(zv, np.zeros((2, 2)))


def test_extra_feed_is_an_error():
    x1, stray = ad.Variable("x1"), ad.Variable("stray")
    with pytest.raises(ValueError, match="stray"):
        ad.Evaluator([x1 + 1]).run({x1: np.ones(2), stray: np.ones(2)})


def test_wrong_rank_raises_the_ops_error():
    a, b = ad.Variable("a"), ad.Variable("b")
    with pytest.raises(ndl.ShapeError, match=r"matmul.*at least 1 dim.*\(\) and \(3,\)"):
        ad.Evaluator([a @ b]).run({a: np.ones(()), b: np.ones(3)})
    with pytest.raises(ndl.ShapeError, match=r"matmul: shapes \(3,\) and \(4,\) are not"):
        ad.Evaluator([a @ b]).run({a: np.ones(3), b: np.ones(4)})
    with pytest.raises(ndl.ShapeError, match="transpose"):
        ad.Evaluator([ad.transpose(a, 0, 2)]).run({a: np.ones((2, 2))})
    with pytest.raises(ndl.ShapeError, match="layernorm"):
        ad.Evaluator([ad.layernorm(a, (4,))]).run({a: np.ones((2, 3))})
    with pytest.raises(ndl.ShapeError, match="broadcast"):
        ad.Evaluator([ad.broadcast(a, (3,), (2, 3))]).run({a: np.ones(2)})
    with pytest.raises(ndl.ShapeError, match="expand_as"):
        ad.Evaluator([ad.expand_as(a, b)]).run({a: np.ones(3), b: np.ones((2, 2))})


def test_feeding_an_intermediate_node_overrides_it():
    x = ad.Variable("x")
    h = x * 3
    y = h + 1
    (v,) = ad.Evaluator([y]).run({h: np.array([10.0])})
    np.testing.assert_array_equal(v, [11.0])


def test_constants_in_the_graph():
    x = ad.Variable("x")
    c = ndl.Tensor(np.array([1.0, 2.0]), dtype="float64", requires_grad=False)
    y = x * c
    (g,) = ad.gradients(y, [x])
    yv, gv = ad.Evaluator([y, g]).run({x: np.array([3.0, 4.0])})
    np.testing.assert_array_equal(yv, [3.0, 8.0])
    np.testing.assert_array_equal(gv, [1.0, 2.0])


def test_deep_chain_has_no_recursion_limit():
    x = ad.Variable("x")
    y = x
    for _ in range(5000):
        y = y + 1
    (g,) = ad.gradients(y, [x])
    yv, gv = ad.Evaluator([y, g]).run({x: np.zeros(2)})
    np.testing.assert_array_equal(yv, [5000.0, 5000.0])
    np.testing.assert_array_equal(gv, [1.0, 1.0])
    assert isinstance(y.name, str)


# ----------------------------------------------------------------------------------------------
# Gradients


def test_gradient_of_gradient():
    x1, x2 = ad.Variable("x1"), ad.Variable("x2")
    y = x1 * x1 + x1 * x2
    g1, g2 = ad.gradients(y, [x1, x2])
    h11, h12 = ad.gradients(g1, [x1, x2])
    h21, h22 = ad.gradients(g2, [x1, x2])
    feed = {x1: np.array([2.0, -1.0, 0.5]), x2: np.array([3.0, 4.0, -2.0])}
    out = ad.Evaluator([g1, g2, h11, h12, h21, h22]).run(feed)
    np.testing.assert_array_equal(out[0], 2 * feed[x1] + feed[x2])
    np.testing.assert_array_equal(out[1], feed[x1])
    for got, want in zip(out[2:], (2.0, 1.0, 1.0, 0.0)):
        np.testing.assert_array_equal(got, np.full(3, want))


def test_third_derivative():
    x = ad.Variable("x")
    y = ad.power(x, 4)
    g = x
    for _ in range(3):
        (g,) = ad.gradients(y if g is x else g, [x])
    (v,) = ad.Evaluator([g]).run({x: np.array([1.0, 2.0])})
    np.testing.assert_allclose(v, 24 * np.array([1.0, 2.0]))


def test_gradients_sum_over_paths_and_nonscalar_seed():
    x = ad.Variable("x")
    y = x * x + ad.exp(x) * x  # x used four times
    (g,) = ad.gradients(y, [x])
    xv = np.array([[0.5, -1.0], [2.0, 0.0]])
    (gv,) = ad.Evaluator([g]).run({x: xv})
    np.testing.assert_allclose(gv, 2 * xv + np.exp(xv) * (xv + 1), rtol=1e-12)


def _numeric_grad(f, arr):
    out = np.zeros(arr.shape)
    for j in range(arr.size):
        plus, minus = arr.copy(), arr.copy()
        plus.reshape(-1)[j] += EPS
        minus.reshape(-1)[j] -= EPS
        out.reshape(-1)[j] = (f(plus) - f(minus)) / (2 * EPS)
    return out


def test_split_and_stack_gradients_follow_the_fed_length():
    """The number of parts of a split is known only at run time: one gradient graph serves
    feeds of different lengths, checked against finite differences on each feed."""
    x, w = ad.Variable("x"), ad.Variable("w")
    parts = ndl.split(x, 0)
    # Uses two parts, so the tuple's adjoint has zeros in the others; stack of all of
    # them through split's own gradient path on top.
    y = (parts[0] * parts[-1] * w).sum() + (ndl.stack([parts[1], parts[0]], 1) ** 2).sum()
    gx, gw = ad.gradients(y, [x, w])
    ev, fwd = ad.Evaluator([gx, gw]), ad.Evaluator([y])
    rng = np.random.default_rng(3)
    for n in (2, 3, 5):
        xv, wv = rng.standard_normal((n, 3)), rng.standard_normal(3)
        got_x, got_w = ev.run({x: xv, w: wv})
        np.testing.assert_allclose(got_x, _numeric_grad(
            lambda a, wv=wv: fwd.run({x: a, w: wv})[0], xv), atol=1e-6)
        np.testing.assert_allclose(got_w, _numeric_grad(
            lambda b, xv=xv: fwd.run({x: xv, w: b})[0], wv), atol=1e-6)
        expected_x = np.zeros((n, 3))
        expected_x[0] += xv[-1] * wv + 2 * xv[0]
        expected_x[-1] += xv[0] * wv
        expected_x[1] += 2 * xv[1]
        np.testing.assert_allclose(got_x, expected_x, rtol=1e-12)


def test_stack_of_a_split_whole_and_second_order():
    """Stack applied to a whole split node (its length unknown when the graph is built), and
    the second derivative through both tuple ops, in graph mode."""
    x = ad.Variable("x")
    y = (ndl.ops.Stack(0)(ndl.split(x, 1)) ** 3).sum()
    (g,) = ad.gradients(y, [x])
    (h,) = ad.gradients((g * g).sum(), [x])
    xv = np.random.default_rng(4).standard_normal((2, 3))
    gv, hv = ad.Evaluator([g, h]).run({x: xv})
    np.testing.assert_allclose(gv, 3 * xv ** 2, rtol=1e-12)
    np.testing.assert_allclose(hv, 36 * xv ** 3, rtol=1e-12)


@pytest.mark.parametrize("build", [
    lambda x: ndl.stack([x, x * x], 1),
    lambda x: (lambda t: t[0] * t[2])(ndl.split(x, 0)),
    lambda x: (lambda t: t[0] * t[1])(ndl.fused_add_scalars(x, 1.5, -0.5)),
], ids=["stack", "split", "fused_add_scalars"])
def test_tuple_ops_second_derivative_in_graph_mode(build):
    """The gradient node of a tuple graph, differentiated again, vs finite differences of
    the gradient itself."""
    x, p = ad.Variable("x"), ad.Variable("p")
    xv = np.random.default_rng(5).standard_normal((3, 2))
    (shape,) = [v.shape for v in ad.Evaluator([build(x)]).run({x: xv})]
    pv = np.random.default_rng(6).standard_normal(shape)
    (g,) = ad.gradients((build(x) * p).sum(), [x])
    q = np.random.default_rng(7).standard_normal(xv.shape)
    (h,) = ad.gradients((g * ndl.Tensor(q, dtype="float64", requires_grad=False)).sum(), [x])
    (hv,) = ad.Evaluator([h]).run({x: xv, p: pv})
    g_ev = ad.Evaluator([g])
    numeric = _numeric_grad(lambda a: np.sum(g_ev.run({x: a, p: pv})[0] * q), xv)
    np.testing.assert_allclose(hv, numeric, atol=1e-6)


def test_gradient_of_output_itself_is_ones():
    x = ad.Variable("x")
    y = x * 2
    (gy,) = ad.gradients(y, [y])
    (v,) = ad.Evaluator([gy]).run({x: np.ones((2, 3))})
    np.testing.assert_array_equal(v, np.ones((2, 3)))


# ----------------------------------------------------------------------------------------------
# Names, printing and traversal


def test_names_built_from_inputs(capsys):
    x1, x2 = ad.Variable("x1"), ad.Variable("x2")
    assert x1.name == "x1"
    assert (x1 * x2).name == "(x1*x2)"
    assert (x1 + x2).name == "(x1+x2)"
    assert (x1 - x2).name == "(x1-x2)"
    assert (x1 / x2).name == "(x1/x2)"
    assert (x1 @ x2).name == "(x1@x2)"
    assert ad.add_by_const(x1, 2).name == "(x1+2)"
    assert ad.mul_by_const(x1, 0.5).name == "(x1*0.5)"
    assert (x1 ** 2).name == "(x1**2)"
    assert ad.exp(ad.log(x1)).name == "exp(log(x1))"
    assert ad.sum_op(x1, 1).name == "sum(x1, dim=1)"
    assert ad.transpose(x1, 0, 1).name == "transpose(x1, 0, 1)"
    assert ad.softmax(x1).name == "softmax(x1, dim=-1)"
    print(x1 * x2 + x1)
    assert capsys.readouterr().out.strip() == "((x1*x2)+x1)"
    assert "x1" in repr(x1) and "(x1*x2)" in repr(x1 * x2)


def test_names_can_be_set_and_propagate():
    x = ad.Variable("x")
    h = ad.relu(x)
    h.name = "hidden"
    assert (h * 2).name == "(hidden*2)"


def test_eager_tensors_print_as_before():
    t = ndl.Tensor(np.array([1.0, 2.0]), dtype="float64")
    assert str(t) == str(np.array([1.0, 2.0]))
    assert repr(t).startswith("needle.Tensor(")


def test_topological_sort():
    x1, x2 = ad.Variable("x1"), ad.Variable("x2")
    m = x1 * x2
    y = m + x1
    assert ad.topological_sort(y) == [x1, x2, m, y]
    assert ad.topological_sort([y, m]) == [x1, x2, m, y]


def test_variable_is_a_placeholder():
    x = ad.Variable("x")
    assert isinstance(x, ndl.Tensor)
    assert x.op is None and x.cached_data is None and x.requires_grad
    with pytest.raises(ndl.GraphError):
        x.numpy()


def test_tuple_length_in_graph_mode():
    x, y = ad.Variable("x"), ad.Variable("y")
    pair = ndl.make_tuple(x, y)
    assert len(pair) == 2 and [t.name for t in pair] == ["x", "y"]
    # A split's length is known only at run time: iterating it is an error, not an endless
    # loop of lazily built elements.
    with pytest.raises(ndl.GraphError):
        for _ in ndl.split(x, 0):
            pass
