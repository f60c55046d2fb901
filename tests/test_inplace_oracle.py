"""In-place programs run in needle and in PyTorch: the same values, gradients and refusals.

Each program is written once against the operators and methods both libraries share.
Runs only where torch is installed (``make test-oracle``).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_inplace import NeedleLib, random_program, run_program

import needle as ndl

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.oracle


def _item_updates(x, w):
    h = x * 1.0
    h[0] += w
    h[1:, ::2] = w[:2] * 3.0
    h *= w
    h[:, 1] -= 0.5
    return (h * h).sum()


def _through_views(x, w):
    h = x * 1.0
    row = h[1]
    row.mul_(w)
    t = h.reshape((3, 2))
    t.add_(1.0)
    return (h * h).sum() + row.sum()


def _rebased_users(x, w):
    h = x * 2.0
    early = h * 3.0  # uses h before the in-place ops (MulScalar saves nothing)
    h += w
    h.div_(w)
    h.sub_(x, alpha=0.5)
    return (h * early).sum()


def _copy_fill_zero(x, w):
    h = x * 1.0
    h.copy_(w)  # broadcast over rows
    g = x * 1.0
    g.zero_()
    g += x * x
    return (h * g).sum()


PROGRAMS = [_item_updates, _through_views, _rebased_users, _copy_fill_zero]


def _run_needle(program, xv, wv):
    x = ndl.Tensor(xv, dtype="float64")
    w = ndl.Tensor(wv, dtype="float64")
    loss = program(x, w)
    loss.backward()
    return loss.numpy(), x.grad.numpy(), w.grad.numpy()


def _run_torch(program, xv, wv):
    x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(wv, dtype=torch.float64, requires_grad=True)
    loss = program(x, w)
    loss.backward()
    return loss.detach().numpy(), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.__name__[1:])
def test_same_values_and_gradients_as_torch(program):
    rng = np.random.default_rng(3)
    xv = rng.uniform(-2, 2, (2, 3))
    wv = rng.uniform(0.5, 2, 3)
    for got, want in zip(_run_needle(program, xv, wv), _run_torch(program, xv, wv)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _saved_then_modified(x, w):
    h = x * 1.0
    y = h * w
    h.add_(1.0)
    return y.sum()


def _output_then_modified(x, w):
    y = (x * w).exp()
    y.mul_(2.0)
    return y.sum()


def _leaf_modified(x, w):
    x.add_(1.0)
    return x.sum()


@pytest.mark.parametrize("program", [_saved_then_modified, _output_then_modified,
                                     _leaf_modified], ids=lambda p: p.__name__[1:])
def test_both_refuse(program):
    xv, wv = np.ones((2, 3)), np.ones(3)
    with pytest.raises(RuntimeError):
        _run_torch(program, xv, wv)
    with pytest.raises(ndl.GraphError):
        _run_needle(program, xv, wv)


# ----------------------------------------------------------------------------------------------
# Random programs of views and in-place ops (tests/test_inplace.py draws them): wherever
# PyTorch computes gradients, needle must compute the same ones (needle may also succeed where
# PyTorch refuses: it checks the bytes written, not one counter per storage; test_inplace.py
# checks those cases against finite differences).


class _TorchLib:
    def leaf(self, arr):
        return torch.tensor(arr, dtype=torch.float64, requires_grad=True)

    def transpose(self, t):
        return t.transpose(0, 1)


@pytest.mark.parametrize("seed", range(300))
def test_random_view_programs_match_torch(seed):
    xv, wv, steps = random_program(seed)
    try:
        x, w = _TorchLib().leaf(xv), _TorchLib().leaf(wv)
        loss = run_program(_TorchLib(), steps, x, w)
        loss.backward()
    except RuntimeError:
        return  # PyTorch refuses this program (a saved tensor was modified)
    x2, w2 = ndl.Tensor(xv, dtype="float64"), ndl.Tensor(wv, dtype="float64")
    loss2 = run_program(NeedleLib(), steps, x2, w2)
    loss2.backward()
    np.testing.assert_allclose(loss2.numpy(), loss.detach().numpy(), rtol=1e-9)
    for ours, theirs in ((x2, x), (w2, w)):
        want = np.zeros(theirs.shape) if theirs.grad is None else theirs.grad.numpy()
        got = np.zeros(ours.shape) if ours.grad is None else ours.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
