"""Fused ops matmul_layernorm / matmul_softmax: one node each, equal to the unfused
composition in values and gradients (first and second order), eager and graph mode."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_values, tensor

import needle as ndl
from needle import graph as ad
from needle.autograd import reverse_pass
from needle.gradcheck import gradcheck, gradgradcheck


def unfused_layernorm(a, b, normalized_shape, eps=1e-5):
    """layernorm(a @ b) written with basic needle ops."""
    axes = tuple(range(-len(normalized_shape), 0))
    h = a @ b
    centred = h - ndl.ops.mean(h, axes, keepdims=True)
    var = ndl.ops.mean(centred * centred, axes, keepdims=True)
    return centred / ndl.ops.sqrt(var + eps)


def unfused_softmax(a, b, dim=-1):
    h = a @ b
    e = ndl.ops.exp(h - ndl.ops.max(h, dim, keepdims=True).detach())
    return e / ndl.ops.summation(e, dim, keepdims=True)


def np_layernorm(h, k, eps=1e-5):
    axes = tuple(range(h.ndim - k, h.ndim))
    mu = h.mean(axis=axes, keepdims=True)
    return (h - mu) / np.sqrt(((h - mu) ** 2).mean(axis=axes, keepdims=True) + eps)


def np_softmax(h, dim):
    e = np.exp(h - h.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


LN_CASES = [((3, 4), (4, 5), (5,)), ((2, 3, 4), (4, 5), (5,)), ((2, 3, 4), (2, 4, 5), (3, 5)),
            ((4, 3), (3, 2), 2)]
SM_CASES = [((3, 4), (4, 5), -1), ((2, 3, 4), (4, 5), 1), ((3, 4), (2, 4, 5), 0)]


def _grads(out, inputs, seed):
    v = tensor(np.random.default_rng(seed).standard_normal(out.shape), requires_grad=False)
    found = reverse_pass(out, v, set(inputs))
    return [found[x].numpy() for x in inputs]


@pytest.mark.parametrize("sa, sb, ns", LN_CASES)
def test_matmul_layernorm_eager(sa, sb, ns):
    av, bv = make_values(sa, "real", 0), make_values(sb, "real", 1)
    a, b = tensor(av), tensor(bv)
    fused = ndl.matmul_layernorm(a, b, ns)
    ns_t = (ns,) if isinstance(ns, int) else ns
    assert isinstance(fused.op, ndl.ops.MatMulLayerNorm) and fused.inputs == (a, b)
    np.testing.assert_allclose(fused.numpy(), np_layernorm(av @ bv, len(ns_t)), atol=1e-12)
    unfused = unfused_layernorm(a, b, ns_t)
    np.testing.assert_allclose(fused.numpy(), unfused.numpy(), atol=1e-12)
    for g_f, g_u in zip(_grads(fused, [a, b], 3), _grads(unfused, [a, b], 3)):
        np.testing.assert_allclose(g_f, g_u, atol=1e-10)
    np.testing.assert_array_equal(a.numpy(), av)  # in-place work never touches inputs


@pytest.mark.parametrize("sa, sb, dim", SM_CASES)
def test_matmul_softmax_eager(sa, sb, dim):
    av, bv = make_values(sa, "real", 0), make_values(sb, "real", 1)
    a, b = tensor(av), tensor(bv)
    fused = ndl.matmul_softmax(a, b, dim)
    assert isinstance(fused.op, ndl.ops.MatMulSoftmax) and fused.inputs == (a, b)
    np.testing.assert_allclose(fused.numpy(), np_softmax(av @ bv, dim), atol=1e-12)
    unfused = unfused_softmax(a, b, dim)
    for g_f, g_u in zip(_grads(fused, [a, b], 3), _grads(unfused, [a, b], 3)):
        np.testing.assert_allclose(g_f, g_u, atol=1e-10)


def test_fused_gradients_against_finite_differences():
    a, b = tensor(make_values((2, 3), "real", 0)), tensor(make_values((3, 4), "real", 1))
    assert gradcheck(lambda x, y: ndl.matmul_layernorm(x, y, (4,)), a, b)
    assert gradcheck(lambda x, y: ndl.matmul_softmax(x, y), a, b)
    assert gradgradcheck(lambda x, y: ndl.matmul_layernorm(x, y, (4,)), a, b)
    assert gradgradcheck(lambda x, y: ndl.matmul_softmax(x, y, 0), a, b)


@pytest.mark.parametrize("kind", ["layernorm", "softmax"])
def test_fused_graph_mode_equals_unfused(kind):
    a, b = ad.Variable("a"), ad.Variable("b")
    if kind == "layernorm":
        fused, unfused = ad.matmul_layernorm(a, b, (5,)), ad.layernorm(ad.matmul(a, b), (5,))
    else:
        fused, unfused = ad.matmul_softmax(a, b, -2), ad.softmax(ad.matmul(a, b), -2)
    assert ad.topological_sort(fused) == [a, b, fused]  # one node
    p = ad.Variable("p")
    grads = ad.gradients(fused * p, [a, b]) + ad.gradients(unfused * p, [a, b])
    feed = {a: make_values((2, 3, 4), "real", 0), b: make_values((4, 5), "real", 1),
            p: make_values((2, 3, 5), "real", 2)}
    fv, uv, *gs = ad.Evaluator([fused, unfused] + grads).run(feed)
    assert fv.dtype == np.float64
    np.testing.assert_allclose(fv, uv, atol=1e-12)
    np.testing.assert_allclose(gs[0], gs[2], atol=1e-10)
    np.testing.assert_allclose(gs[1], gs[3], atol=1e-10)
    assert fused.name.startswith(f"matmul_{kind}(a, b")


def test_fused_second_order_in_graph_mode():
    a, b = ad.Variable("a"), ad.Variable("b")
    y_f = ad.sum_op(ad.matmul_layernorm(a, b, (3,)) ** 3, (0, 1))
    y_u = ad.sum_op(ad.layernorm(ad.matmul(a, b), (3,)) ** 3, (0, 1))
    (ga_f,) = ad.gradients(y_f, [a])
    (ga_u,) = ad.gradients(y_u, [a])
    hb_f = ad.gradients(ad.sum_op(ga_f, (0, 1)), [b])
    hb_u = ad.gradients(ad.sum_op(ga_u, (0, 1)), [b])
    feed = {a: make_values((2, 4), "real", 0), b: make_values((4, 3), "real", 1)}
    f, u = ad.Evaluator(hb_f + hb_u).run(feed)
    np.testing.assert_allclose(f, u, atol=1e-9)


def test_fused_errors():
    a, b = tensor(np.ones((2, 3))), tensor(np.ones((3, 4)))
    with pytest.raises(ndl.ShapeError, match="matmul_layernorm: normalized_shape"):
        ndl.matmul_layernorm(a, b, (3,))
    with pytest.raises(ndl.ShapeError, match="matmul_softmax: shapes"):
        ndl.matmul_softmax(b, b)
    with pytest.raises(ndl.ShapeError, match="matmul_softmax"):
        ndl.matmul_softmax(a, b, dim=2)


def test_fused_keeps_float32():
    a = ndl.Tensor(np.ones((2, 3)), dtype="float32")
    b = ndl.Tensor(np.arange(12.0).reshape(3, 4), dtype="float32")
    out = ndl.matmul_softmax(a, b)
    assert np.dtype(out.dtype) == np.float32
    out.sum().backward()
    assert np.dtype(a.grad.dtype) == np.float32
