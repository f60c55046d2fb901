"""needle.functional: grad, value_and_grad, vjp, jvp, hvp, jacobian, hessian against
analytic derivatives and finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_values, seeds, tensor
from hypothesis import given

import needle as ndl
from needle import functional as F

EPS = 1e-6


def fd_grad(f, x, eps=EPS):
    """Central-difference gradient of a numpy scalar (or array) function ``f`` at ``x``."""
    x = np.asarray(x, dtype=np.float64)
    out = np.asarray(f(x))
    g = np.zeros(out.shape + x.shape)
    for j in range(x.size):
        d = np.zeros(x.size)
        d[j] = eps
        d = d.reshape(x.shape)
        g.reshape(out.shape + (-1,))[..., j] = (np.asarray(f(x + d)) - np.asarray(f(x - d))) / (
            2 * eps)
    return g


def rosenbrock(x):
    """sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, for Tensors."""
    head, tail = x[:-1], x[1:]
    return (100 * (tail - head * head) ** 2 + (1 - head) ** 2).sum()


def rosenbrock_grad_np(x):
    g = np.zeros_like(x)
    g[:-1] += -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return g


def rosenbrock_hess_np(x):
    n = x.size
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] = h[i + 1, i] = -400 * x[i]
    return h


# ----------------------------------------------------------------------------------------------
# grad and value_and_grad


@given(seeds)
def test_grad_analytic(seed):
    xv = make_values((4,), "real", seed)
    g = F.grad(lambda x: (x * x * x).sum() + ndl.exp(x).sum())(tensor(xv))
    np.testing.assert_allclose(g.numpy(), 3 * xv ** 2 + np.exp(xv), rtol=1e-12)


def test_grad_argnums_and_value_and_grad():
    xv, yv = make_values((3,), "real", 0), make_values((3,), "real", 1)

    def f(x, y):
        return (x * y * y).sum()

    gx = F.grad(f)(tensor(xv), tensor(yv))
    np.testing.assert_allclose(gx.numpy(), yv ** 2)
    gy = F.grad(f, argnums=1)(tensor(xv), tensor(yv))
    np.testing.assert_allclose(gy.numpy(), 2 * xv * yv)
    value, (gx, gy) = F.value_and_grad(f, argnums=(0, 1))(tensor(xv), tensor(yv))
    np.testing.assert_allclose(value.numpy(), np.sum(xv * yv * yv))
    np.testing.assert_allclose(gy.numpy(), 2 * xv * yv)


def test_grad_has_aux_and_unused_argument():
    def f(x, y):
        return (x * x).sum(), x * 2

    (g, aux) = F.grad(f, has_aux=True)(tensor([1.0, 2.0]), tensor([5.0]))
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(aux.numpy(), [2.0, 4.0])
    gy = F.grad(lambda x, y: (x * x).sum(), argnums=1)(tensor([1.0]), tensor([[5.0, 6.0]]))
    np.testing.assert_array_equal(gy.numpy(), [[0.0, 0.0]])


def test_grad_leaves_grad_fields_alone():
    x = tensor([1.0, 2.0])
    sentinel = tensor([7.0, 7.0])
    x.grad = sentinel
    w = ndl.Tensor(np.array([3.0]), dtype="float64", requires_grad=False)
    F.grad(lambda x: (x * x * w).sum())(x)
    F.hessian(lambda x: (x * x * x).sum())(x)
    F.vjp(lambda x: x * 2, x)[1](np.ones(2))
    assert x.grad is sentinel and w.grad is None


def test_grad_of_grad():
    xv = np.array([0.5, -1.0, 2.0])
    d2 = F.grad(lambda x: F.grad(lambda z: (z ** 4).sum())(x).sum())(tensor(xv))
    np.testing.assert_allclose(d2.numpy(), 12 * xv ** 2, rtol=1e-12)


def test_grad_accepts_numpy_and_requires_scalar():
    g = F.grad(lambda x: (x * x).sum())(np.array([3.0]))
    assert np.dtype(g.dtype) == np.float64 and g.numpy()[0] == 6.0
    with pytest.raises(ndl.ShapeError, match="scalar"):
        F.grad(lambda x: x * 2)(tensor([1.0, 2.0]))


# ----------------------------------------------------------------------------------------------
# vjp and jvp


def test_vjp_linear_map():
    A = make_values((3, 4), "real", 0)
    xv = make_values((4, 2), "real", 1)
    out, vjp_fn = F.vjp(lambda x: tensor(A, requires_grad=False) @ x, tensor(xv))
    np.testing.assert_allclose(out.numpy(), A @ xv)
    for seed in (2, 3):  # vjp_fn is reusable
        v = make_values((3, 2), "real", seed)
        (g,) = vjp_fn(v)
        np.testing.assert_allclose(g.numpy(), A.T @ v, rtol=1e-12)
    with pytest.raises(ndl.ShapeError):
        vjp_fn(np.ones(3))


def _f2(x, y):
    return x * y + ndl.exp(x) * ndl.relu(y)


@given(seeds)
def test_jvp_analytic_and_fd(seed):
    xv, yv = make_values((3,), "real", seed), make_values((3,), "nonzero", seed + 1)
    tx, ty = make_values((3,), "real", seed + 2), make_values((3,), "real", seed + 3)
    out, tangent = F.jvp(_f2, (tensor(xv), tensor(yv)), (tensor(tx), tensor(ty)))
    relu_y, step = np.maximum(yv, 0), (yv > 0).astype(float)
    np.testing.assert_allclose(out.numpy(), xv * yv + np.exp(xv) * relu_y)
    want = (yv + np.exp(xv) * relu_y) * tx + (xv + np.exp(xv) * step) * ty
    np.testing.assert_allclose(tangent.numpy(), want, rtol=1e-10)

    def along(s):
        return (_f2(tensor(xv + s * tx), tensor(yv + s * ty))).numpy()

    np.testing.assert_allclose(tangent.numpy(), (along(EPS) - along(-EPS)) / (2 * EPS),
                               rtol=1e-5, atol=1e-7)


def test_jvp_single_primal_and_constant_output():
    out, t = F.jvp(lambda x: (x * x).sum(), tensor([1.0, 2.0]), tensor([1.0, 1.0]))
    assert t.shape == () and t.numpy() == pytest.approx(6.0)
    out, t = F.jvp(lambda x: ndl.ops.zeros_like(x) + 1, tensor([1.0]), tensor([3.0]))
    np.testing.assert_array_equal(t.numpy(), [0.0])


# ----------------------------------------------------------------------------------------------
# jacobian, hessian, hvp


def test_jacobian_linear_and_elementwise():
    A = make_values((3, 4), "real", 0)
    xv = make_values((4,), "real", 1)
    J = F.jacobian(lambda x: tensor(A, requires_grad=False) @ x.reshape((4, 1)))(tensor(xv))
    assert J.shape == (3, 1, 4)
    np.testing.assert_allclose(J.numpy()[:, 0, :], A)
    J = F.jacobian(lambda x: ndl.exp(x))(tensor(xv))
    np.testing.assert_allclose(J.numpy(), np.diag(np.exp(xv)), rtol=1e-12)


def test_jacobian_argnums_against_fd():
    xv, yv = make_values((2, 2), "real", 0), make_values((2,), "nonzero", 1)
    Jx, Jy = F.jacobian(lambda x, y: ndl.exp(x) * y + x, argnums=(0, 1))(tensor(xv), tensor(yv))
    np.testing.assert_allclose(Jx.numpy(), fd_grad(lambda x: np.exp(x) * yv + x, xv),
                               atol=1e-7)
    np.testing.assert_allclose(Jy.numpy(), fd_grad(lambda y: np.exp(xv) * y + xv, yv),
                               atol=1e-7)


@given(seeds)
def test_rosenbrock_hessian(seed):
    xv = make_values((4,), "real", seed)
    H = F.hessian(rosenbrock)(tensor(xv))
    np.testing.assert_allclose(H.numpy(), rosenbrock_hess_np(xv), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(H.numpy(), fd_grad(rosenbrock_grad_np, xv), rtol=1e-5,
                               atol=1e-4)
    g = F.grad(rosenbrock)(tensor(xv))
    np.testing.assert_allclose(g.numpy(), rosenbrock_grad_np(xv), rtol=1e-10, atol=1e-9)
    v = make_values((4,), "real", seed + 1)
    value, hv = F.hvp(rosenbrock, tensor(xv), tensor(v))
    np.testing.assert_allclose(hv.numpy(), rosenbrock_hess_np(xv) @ v, rtol=1e-10, atol=1e-8)


def _mlp_loss_np(w1, w2, X, Y):
    z = np.maximum(X @ w1, 0) @ w2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(Y * logp).sum() / X.shape[0]


def _mlp_grad_np(w1, w2, X, Y):
    """d loss / d w1 by hand (numpy)."""
    h_pre = X @ w1
    h = np.maximum(h_pre, 0)
    z = h @ w2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - Y) / X.shape[0]
    return X.T @ ((dz @ w2.T) * (h_pre > 0))


def test_mlp_softmax_cross_entropy_hessian_matches_fd_of_gradients():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    Y = np.eye(3)[rng.integers(0, 3, 5)]
    w1v, w2v = rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    Xt, Yt = tensor(X, requires_grad=False), tensor(Y, requires_grad=False)

    def loss(w1, w2):
        logp = ndl.logsoftmax(ndl.relu(Xt @ w1) @ w2)
        return -(Yt * logp).sum() / 5

    assert F.grad(loss)(tensor(w1v), tensor(w2v)).numpy() == pytest.approx(
        _mlp_grad_np(w1v, w2v, X, Y), rel=1e-10, abs=1e-12)
    H = F.hessian(loss)(tensor(w1v), tensor(w2v))
    assert H.shape == (3, 4, 3, 4)
    want = fd_grad(lambda w: _mlp_grad_np(w, w2v, X, Y), w1v)
    np.testing.assert_allclose(H.numpy(), want, rtol=1e-5, atol=1e-6)
    # Cross blocks with a tuple argnums: d2/dw1 dw2 against finite differences.
    (_, H12), _ = F.hessian(loss, argnums=(0, 1))(tensor(w1v), tensor(w2v))
    want12 = fd_grad(lambda w: _mlp_grad_np(w1v, w, X, Y), w2v)
    np.testing.assert_allclose(H12.numpy(), want12, rtol=1e-5, atol=1e-6)
    # hvp agrees with the Hessian.
    v = rng.standard_normal((3, 4))
    _, hv = F.hvp(lambda w: loss(w, tensor(w2v)), (tensor(w1v),), (tensor(v),))
    np.testing.assert_allclose(hv[0].numpy(), np.tensordot(H.numpy(), v, 2), rtol=1e-9,
                               atol=1e-12)
