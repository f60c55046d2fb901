"""BatchNormTrain and RunningStat: BatchNorm1d's training step as one node each.

The values must be those of the plain composition of elementary ops bit for bit (the
composition is what the course's BatchNorm1d is), the gradients must match finite
differences to first and second order, and bad shapes must get a named error.
"""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
import needle.nn as nn
from needle import ops
from needle.errors import ShapeError
from needle.gradcheck import gradcheck, gradgradcheck

RNG = np.random.default_rng(7)


def _composed(x, w, b, eps):
    """The batch norm of the course written out with elementary needle ops."""
    n, d = x.shape
    mean = x.sum(axes=(0,)) / n
    centred = x - ndl.broadcast_to(mean.reshape((1, d)), x.shape)
    var = (centred ** 2).sum(axes=(0,)) / n
    std = ndl.broadcast_to(((var + eps) ** 0.5).reshape((1, d)), x.shape)
    return (centred / std * ndl.broadcast_to(w.reshape((1, d)), x.shape)
            + ndl.broadcast_to(b.reshape((1, d)), x.shape))


def _tensors(n, d, dtype="float32"):
    x = ndl.Tensor(RNG.standard_normal((n, d)) * 2.5 + 0.7, dtype=dtype, requires_grad=True)
    w = ndl.Tensor(RNG.standard_normal(d), dtype=dtype, requires_grad=True)
    b = ndl.Tensor(RNG.standard_normal(d), dtype=dtype, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("shape", [(64, 256), (5, 3), (1, 4), (2, 1)])
def test_forward_is_the_composition_bit_for_bit(shape):
    x, w, b = _tensors(*shape)
    fused = ops.batchnorm_train(x, w, b, 1e-5).numpy()
    plain = _composed(x, w, b, 1e-5).numpy()
    assert fused.dtype == plain.dtype == np.float32
    np.testing.assert_array_equal(fused, plain)


@pytest.mark.parametrize("shape", [(64, 256), (6, 3)])
def test_gradients_match_the_composition(shape):
    x, w, b = _tensors(*shape)
    u = ndl.Tensor(RNG.standard_normal(shape), dtype="float32", requires_grad=False)
    grads = []
    for fn in (lambda: ops.batchnorm_train(x, w, b, 1e-5), lambda: _composed(x, w, b, 1e-5)):
        (fn() * u).sum().backward()
        grads.append([t.grad.numpy() for t in (x, w, b)])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gradcheck_and_gradgradcheck_in_float64():
    x, w, b = _tensors(5, 3, "float64")
    fn = lambda x, w, b: ops.batchnorm_train(x, w, b, 1e-3)  # noqa: E731
    assert gradcheck(fn, x, w, b)
    assert gradgradcheck(fn, x, w, b)


@pytest.mark.parametrize("which", ["mean", "var"])
def test_running_stat_is_the_composition_and_differentiable(which):
    x, running, _ = _tensors(8, 4, "float64")
    n, m = 8, 0.1
    mean = x.sum(axes=(0,)) / n
    centred = x - ndl.broadcast_to(mean.reshape((1, 4)), x.shape)
    stat = mean if which == "mean" else (centred ** 2).sum(axes=(0,)) / n
    want = running * (1 - m) + stat * m
    got = ops.running_stat(running, x, m, which)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    fn = lambda r, x: ops.running_stat(r, x, m, which)  # noqa: E731
    assert gradcheck(fn, running, x)
    assert gradgradcheck(fn, running, x)


def test_batchnorm1d_training_step_equals_the_composed_module():
    """The module against the course's composition written out here: output, running
    statistics and gradients over three steps; a (1, dim) weight and bias (an old
    checkpoint's layout) give the same."""
    x0 = RNG.standard_normal((16, 6)).astype(np.float32) * 3 + 1
    m = 0.2
    results = []
    for how in ("module", "module (1, dim) affine", "composition"):
        x = ndl.Tensor(x0, requires_grad=True)
        if how == "composition":
            w = ndl.Tensor(np.ones(6), dtype="float32", requires_grad=True)
            b = ndl.Tensor(np.zeros(6), dtype="float32", requires_grad=True)
            rm = ndl.Tensor(np.zeros(6), dtype="float32", requires_grad=False)
            rv = ndl.Tensor(np.ones(6), dtype="float32", requires_grad=False)
            for _ in range(3):
                y = _composed(x, w, b, 1e-5)
                (y * y * y).sum().backward()
                mean = x.detach().sum(axes=(0,)) / 16
                centred = x.detach() - ndl.broadcast_to(mean.reshape((1, 6)), (16, 6))
                rm = rm * (1 - m) + mean * m
                rv = rv * (1 - m) + (centred ** 2).sum(axes=(0,)) / 16 * m
            results.append([y.numpy(), rm.numpy(), rv.numpy(), x.grad.numpy(),
                            w.grad.numpy()])
            continue
        bn = nn.BatchNorm1d(6, momentum=m)
        if how != "module":
            bn.weight = nn.Parameter(bn.weight.reshape((1, 6)))
            bn.bias = nn.Parameter(bn.bias.reshape((1, 6)))
        for _ in range(3):
            y = bn(x)
            (y * y * y).sum().backward()
        results.append([y.numpy(), bn.running_mean.numpy(), bn.running_var.numpy(),
                        x.grad.numpy(), bn.weight.grad.numpy().reshape(-1)])
    (y2, rm2, rv2, gx2, gw2) = results[-1]
    for y1, rm1, rv1, gx1, gw1 in results[:-1]:
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(rm1, rm2)
        np.testing.assert_array_equal(rv1, rv2)
        np.testing.assert_allclose(gx1, gx2, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gw1, gw2, rtol=1e-4, atol=1e-3)


def test_fewer_nodes_than_the_composition():
    from needle import core

    seen = []
    x, w, b = _tensors(8, 4)

    def count(fn):
        seen.clear()
        core.OBSERVERS.append(lambda op, inputs, value: seen.append(op))
        try:
            fn().sum().backward()
        finally:
            core.OBSERVERS.pop()
        return len(seen)

    fused = count(lambda: ops.batchnorm_train(x, w, b, 1e-5))
    plain = count(lambda: _composed(x, w, b, 1e-5))
    assert fused < plain / 2, (fused, plain)


@pytest.mark.parametrize("args, message", [
    (((3,), (3,), (3,)), "expected a (batch, dim) input, got shape (3,)"),
    (((4, 3), (2,), (3,)), "expected (3,) per-feature vectors for input (4, 3), got shape (2,)"),
])
def test_bad_shapes_name_the_op(args, message):
    xs, ws, bs = args
    x = ndl.Tensor(np.ones(xs), dtype="float32")
    w = ndl.Tensor(np.ones(ws), dtype="float32")
    b = ndl.Tensor(np.ones(bs), dtype="float32")
    with pytest.raises(ShapeError, match=r"batchnorm_train: " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        ops.batchnorm_train(x, w, b)


def test_running_stat_rejects_an_unknown_statistic():
    with pytest.raises(ValueError, match="running_stat: which must be 'mean' or 'var'"):
        ops.running_stat(ndl.Tensor(np.ones(3)), ndl.Tensor(np.ones((2, 3))), 0.1, "median")
