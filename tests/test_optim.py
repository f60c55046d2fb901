"""needle.optim: update formulas against a numpy re-derivation, and the Needle golden losses."""

import gc

import numpy as np
import pytest

import needle as ndl
import needle.nn as nn


def _param(values) -> nn.Parameter:
    return nn.Parameter(ndl.Tensor(np.asarray(values, dtype=np.float32), dtype="float32"))


def _set_grad(p, values):
    """Give ``p`` the gradient ``values`` via backward of sum(p * values)."""
    c = ndl.Tensor(np.asarray(values, dtype=np.float32), dtype="float32", requires_grad=False)
    (p * c).sum().backward()


GRADS = [np.array(g, dtype=np.float32) for g in ([1.0, -2.0, 0.5], [0.3, 0.1, -1.0],
                                                  [-0.7, 2.0, 0.0], [1.5, -0.2, 0.4])]
P0 = np.array([0.5, -1.0, 2.0], dtype=np.float32)


def _numpy_sgd(lr, momentum, wd):
    p, u = P0.astype(np.float64), np.zeros(3)
    for g in GRADS:
        g = g + wd * p
        u = momentum * u + (1 - momentum) * g
        p = p - lr * u
    return p


def _numpy_adam(lr, b1, b2, eps, wd):
    p, m, v = P0.astype(np.float64), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


def _run(opt_cls, **kw):
    p = _param(P0)
    opt = opt_cls([p], **kw)
    for g in GRADS:
        opt.reset_grad()
        _set_grad(p, g)
        opt.step()
    return p


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_sgd_matches_numpy(momentum, wd):
    p = _run(ndl.optim.SGD, lr=0.1, momentum=momentum, weight_decay=wd)
    np.testing.assert_allclose(p.numpy(), _numpy_sgd(0.1, momentum, wd), rtol=1e-5, atol=1e-6)
    assert np.dtype(p.dtype) == np.float32


def test_sgd_momentum_is_the_moving_average_form():
    # u1 = (1 - 0.9) * g, not g (PyTorch's form would move 10 times further).
    p = _param([1.0])
    opt = ndl.optim.SGD([p], lr=1.0, momentum=0.9)
    _set_grad(p, [1.0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.9], rtol=1e-6)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_matches_numpy(wd):
    p = _run(ndl.optim.Adam, lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=wd)
    np.testing.assert_allclose(p.numpy(), _numpy_adam(0.01, 0.8, 0.95, 1e-6, wd),
                               rtol=1e-5, atol=1e-6)
    assert np.dtype(p.dtype) == np.float32


def test_adam_first_step_moves_by_lr():
    # With bias correction the first step is lr * g / (|g| + eps): lr in the sign of g.
    p = _param([0.0, 0.0])
    opt = ndl.optim.Adam([p], lr=0.5)
    _set_grad(p, [3.0, -0.01])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [-0.5, 0.5], rtol=1e-5)
    assert opt.t == 1


def test_step_never_changes_grad_and_skips_params_without_grad():
    a, b = _param([1.0, 2.0]), _param([3.0])
    for opt in (ndl.optim.SGD([a, b], lr=0.1, momentum=0.5, weight_decay=0.1),
                ndl.optim.Adam([a, b], lr=0.1, weight_decay=0.1)):
        opt.reset_grad()
        _set_grad(a, [0.5, -0.5])
        grad_obj, grad_val = a.grad, a.grad.numpy().copy()
        opt.step()
        assert a.grad is grad_obj
        np.testing.assert_array_equal(a.grad.numpy(), grad_val)
        np.testing.assert_array_equal(b.numpy(), [3.0])


def test_reset_grad_and_zero_grad_alias():
    p = _param([1.0])
    opt = ndl.optim.SGD([p])
    _set_grad(p, [1.0])
    opt.reset_grad()
    assert p.grad is None
    _set_grad(p, [1.0])
    opt.zero_grad()
    assert p.grad is None


def test_clip_grad_norm():
    a, b = _param([0.0, 0.0]), _param([0.0])
    opt = ndl.optim.SGD([a, b], lr=1.0)
    _set_grad(a, [3.0, 0.0])
    _set_grad(b, [4.0])
    old = a.grad
    norm = opt.clip_grad_norm(max_norm=1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0.8], rtol=1e-5)
    np.testing.assert_array_equal(old.numpy(), [3.0, 0.0])  # the old gradient is not mutated
    # below the limit nothing changes
    kept = a.grad
    assert ndl.optim.clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    assert a.grad is kept


# ----------------------------------------------------------------------------------------------
# Needle's golden losses (hw2 "learn_model_1d"), reproduced with the course's data recipe


def _get_tensor(*shape):
    np.random.seed(np.prod(shape) * len(shape))
    return np.random.randint(0, 100, size=shape) / 20


def _get_labels(n, high):
    np.random.seed(n)
    return np.random.randint(0, high, size=(n,))


def _learn_model_1d(make_model, opt_cls, **kw):
    np.random.seed(42)
    model = make_model()
    X, y = _get_tensor(1024, 64), _get_labels(1024, 16).astype(np.uint8)
    loss_fn = nn.SoftmaxLoss()
    opt = opt_cls(model.parameters(), **kw)
    for X0, y0 in zip(np.array_split(X, 32), np.array_split(y, 32)):
        opt.reset_grad()
        loss = loss_fn(model(ndl.Tensor(X0, dtype="float32")), ndl.Tensor(y0, requires_grad=False))
        loss.backward()
        opt.step()
    return loss.numpy()


def _mlp():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))


@pytest.mark.parametrize("opt_cls, kw, golden", [
    (ndl.optim.SGD, dict(lr=0.01, momentum=0.0), 3.207009),
    (ndl.optim.SGD, dict(lr=0.01, momentum=0.9), 3.311805),
    (ndl.optim.SGD, dict(lr=0.01, momentum=0.0, weight_decay=0.01), 3.202637),
    (ndl.optim.SGD, dict(lr=0.01, momentum=0.9, weight_decay=0.01), 3.306993),
    (ndl.optim.Adam, dict(lr=0.001), 3.703999),
    (ndl.optim.Adam, dict(lr=0.001, weight_decay=0.01), 3.705134),
])
def test_needle_golden_losses(opt_cls, kw, golden):
    np.testing.assert_allclose(_learn_model_1d(_mlp, opt_cls, **kw), golden, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opt_cls", [ndl.optim.SGD, ndl.optim.Adam])
def test_training_keeps_no_graph_alive(opt_cls):
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(16, 4))
    opt = opt_cls(model.parameters(), lr=0.01, weight_decay=0.01)
    X = ndl.Tensor(np.random.default_rng(0).standard_normal((32, 8)), dtype="float32",
                   requires_grad=False)
    y = ndl.Tensor(np.arange(32) % 4, requires_grad=False)
    loss_fn = nn.SoftmaxLoss()

    def steps(n):
        for _ in range(n):
            opt.reset_grad()
            loss_fn(model(X), y).backward()
            opt.step()
        opt.reset_grad()
        gc.collect()
        return ndl.autograd.TENSOR_COUNTER

    after_warmup = steps(3)
    assert steps(50) - after_warmup <= 5
    assert all(np.dtype(p.dtype) == np.float32 for p in model.parameters())
