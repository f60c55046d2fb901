"""What a PyTorch user reaches for, next to the Needle names (which keep their meaning):
bare ``@no_grad``, ``dim=``/``keepdim=``, ``.T``/``.mT``, ``named_parameters()`` and friends."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, make_values, tensor

import needle as ndl
from needle import graph as ad
from needle import nn
from needle.gradcheck import gradcheck, gradgradcheck
from needle.ops._args import reduction_args

# ----------------------------------------------------------------------------------------------
# Grad-mode decorators


def test_no_grad_as_bare_decorator_parenthesised_and_context():
    x = ndl.Tensor([1.0, 2.0])

    @ndl.no_grad
    def bare(t):
        """Doubles t."""
        return t * 2

    @ndl.no_grad()
    def called(t):
        return t * 2

    assert bare.__name__ == "bare" and bare.__doc__ == "Doubles t."
    assert not bare(x).requires_grad
    assert not called(x).requires_grad
    with ndl.no_grad():
        assert not (x * 2).requires_grad
    assert ndl.is_grad_enabled() and (x * 2).requires_grad


def test_enable_grad_as_bare_decorator_inside_no_grad():
    x = ndl.Tensor([1.0, 2.0])

    @ndl.enable_grad
    def bare(t):
        return t * 2

    @ndl.enable_grad()
    def called(t):
        return t * 2

    with ndl.no_grad():
        assert bare(x).requires_grad and called(x).requires_grad
        assert not ndl.is_grad_enabled()  # restored on the way out
        with ndl.enable_grad():
            assert ndl.is_grad_enabled()
        assert not ndl.is_grad_enabled()
    assert ndl.is_grad_enabled()


def test_bare_no_grad_restores_the_mode_after_an_exception():
    @ndl.no_grad
    def fails():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    assert ndl.is_grad_enabled()


def test_detect_anomaly_as_bare_decorator():
    @ndl.autograd.detect_anomaly
    def nan_log(t):
        return ndl.log(t - 5.0)

    with np.errstate(invalid="ignore"), pytest.raises(ndl.GraphError, match="Log"):
        nan_log(ndl.Tensor([1.0]))
    with np.errstate(invalid="ignore"):  # off again outside
        assert np.isnan(ndl.log(ndl.Tensor([1.0]) - 5.0).numpy()).all()


# ----------------------------------------------------------------------------------------------
# dim= / keepdim= beside axes= / keepdims=


def test_reduction_args_helper():
    assert reduction_args("sum", None, 1) == (1, False)
    assert reduction_args("sum", (0, 1), None, True) == ((0, 1), True)
    assert reduction_args("sum", None, None, False, True) == (None, True)
    assert reduction_args("softmax", -1, 0, axes_default=-1) == (0, False)
    with pytest.raises(TypeError, match="sum: got both axes=0 and dim=1"):
        reduction_args("sum", 0, 1)
    with pytest.raises(TypeError, match="keepdims=True and keepdim=False"):
        reduction_args("sum", None, None, True, False)
    with pytest.raises(TypeError, match="softmax"):
        reduction_args("softmax", 0, 1, axes_default=-1)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(x, axis, keepdims=False):
    m = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


X = make_values((2, 3, 4), "real", 21)

# (name, needle call with dim/keepdim, numpy reference)
TORCH_SPELLINGS = [
    ("sum fn", lambda t: ndl.summation(t, dim=1), lambda a: a.sum(axis=1)),
    ("sum method keep", lambda t: t.sum(dim=(0, 2), keepdim=True),
     lambda a: a.sum(axis=(0, 2), keepdims=True)),
    ("mean fn keep", lambda t: ndl.mean(t, dim=-1, keepdim=True),
     lambda a: a.mean(axis=-1, keepdims=True)),
    ("mean method", lambda t: t.mean(dim=0), lambda a: a.mean(axis=0)),
    ("max fn", lambda t: ndl.max(t, dim=2), lambda a: a.max(axis=2)),
    ("max method keep", lambda t: t.max(dim=1, keepdim=True),
     lambda a: a.max(axis=1, keepdims=True)),
    ("logsumexp fn", lambda t: ndl.logsumexp(t, dim=1), lambda a: _logsumexp(a, 1)),
    ("logsumexp method keep", lambda t: t.logsumexp(dim=-1, keepdim=True),
     lambda a: _logsumexp(a, -1, True)),
    ("logsumexp axes keepdims", lambda t: ndl.logsumexp(t, (0, 2), keepdims=True),
     lambda a: _logsumexp(a, (0, 2), True)),
    ("softmax fn", lambda t: ndl.softmax(t, dim=0), lambda a: _softmax(a, 0)),
    ("softmax method", lambda t: t.softmax(dim=1), lambda a: _softmax(a, 1)),
    ("logsoftmax fn", lambda t: ndl.logsoftmax(t, dim=1), lambda a: np.log(_softmax(a, 1))),
    ("logsoftmax method", lambda t: t.logsoftmax(dim=-1), lambda a: np.log(_softmax(a, -1))),
]


@pytest.mark.parametrize("call, reference", [c[1:] for c in TORCH_SPELLINGS],
                         ids=[c[0] for c in TORCH_SPELLINGS])
def test_torch_spellings_forward_and_gradient(call, reference):
    assert_close(call(tensor(X)), reference(X), rtol=1e-10)
    assert gradcheck(call, tensor(X))


@pytest.mark.parametrize("call", [
    lambda t: ndl.logsumexp(t, dim=1, keepdim=True),
    lambda t: t.softmax(dim=0),
    lambda t: t.mean(dim=(0, 1), keepdim=True),
], ids=["logsumexp keepdim", "softmax", "mean keepdim"])
def test_torch_spellings_second_derivative(call):
    assert gradgradcheck(lambda t: call(t) ** 2, tensor(X[:, :2, :2]))


def test_needle_and_torch_spellings_agree():
    t = tensor(X)
    assert_close(t.sum(dim=1), t.sum(axes=1).numpy(), rtol=0)
    assert_close(t.sum(1, keepdim=True), t.sum(axes=1, keepdims=True).numpy(), rtol=0)
    assert_close(ndl.softmax(t, dim=1), ndl.softmax(t, 1).numpy(), rtol=0)
    # Needle semantics kept: max(dim=) returns the values only, and softmax defaults to -1.
    assert isinstance(t.max(dim=1), ndl.Tensor)
    assert_close(ndl.softmax(t), _softmax(X, -1), rtol=1e-10)


def test_logsumexp_keepdim_in_graph_mode():
    x = ad.Variable("x")
    y = ndl.logsumexp(x, dim=1, keepdim=True)
    (g,) = ad.gradients(y, [x])
    xv = make_values((3, 4), "real", 22)
    yv, gv = ad.Evaluator([y, g]).run({x: xv})
    np.testing.assert_allclose(yv, _logsumexp(xv, 1, True), rtol=1e-12)
    np.testing.assert_allclose(gv, _softmax(xv, 1), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# .T and .mT


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4), (1, 2, 3, 2)])
def test_T_reverses_all_axes_like_numpy(shape):
    a = make_values(shape, "real", 23)
    assert_close(tensor(a).T, a.T, rtol=0)
    if a.size:
        assert gradcheck(lambda t: t.T * t.T, tensor(a))


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 1, 4, 3)])
def test_mT_swaps_the_last_two_axes(shape):
    a = make_values(shape, "real", 24)
    assert_close(tensor(a).mT, np.swapaxes(a, -1, -2), rtol=0)
    assert gradcheck(lambda t: t.mT * 2.0, tensor(a))
    assert_close(tensor(a) @ tensor(a).mT, a @ np.swapaxes(a, -1, -2), rtol=1e-10)


def test_T_and_mT_on_graph_variables():
    x = ad.Variable("x")
    y = (x.T * x.T).sum() + (x.mT @ x).sum()
    (g,) = ad.gradients(y, [x])
    xv = make_values((2, 3, 4), "real", 25)
    yv, gv = ad.Evaluator([y, g]).run({x: xv})
    ones = np.ones((2, 4, 4))
    np.testing.assert_allclose(yv, (xv ** 2).sum() + (np.swapaxes(xv, -1, -2) @ xv).sum())
    np.testing.assert_allclose(gv, 2 * xv + xv @ (ones + np.swapaxes(ones, -1, -2)),
                               rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Module traversal


class _Block(nn.Module):
    def __init__(self, shared):
        super().__init__()
        self.layers = [nn.Linear(2, 3), shared]
        self.heads = {"a": nn.Linear(3, 1), "b": nn.Sequential(nn.ReLU(), shared)}
        self.scale = nn.Parameter(ndl.Tensor([1.0]))
        self.not_a_parameter = ndl.Tensor([2.0])


def _model():
    shared = nn.Linear(3, 3)
    return nn.Sequential(_Block(shared), nn.BatchNorm1d(3)), shared


def test_named_modules_walks_lists_and_dicts_in_definition_order():
    model, shared = _model()
    names = [(name, type(m).__name__) for name, m in model.named_modules()]
    assert names == [
        ("", "Sequential"),
        ("modules.0", "_Block"),
        ("modules.0.layers.0", "Linear"),
        ("modules.0.layers.1", "Linear"),       # shared: named where first met
        ("modules.0.heads.a", "Linear"),
        ("modules.0.heads.b", "Sequential"),
        ("modules.0.heads.b.modules.0", "ReLU"),
        ("modules.1", "BatchNorm1d"),
    ]
    assert dict(model.named_modules())["modules.0.layers.1"] is shared
    assert [name for name, _ in model.named_modules(prefix="net")][:2] == ["net", "net.modules.0"]


def test_named_parameters_match_parameters_and_state_dict():
    model, shared = _model()
    named = list(model.named_parameters())
    assert [p for _, p in named] == model.parameters()
    assert [name for name, _ in named] == [
        "modules.0.layers.0.weight", "modules.0.layers.0.bias",
        "modules.0.layers.1.weight", "modules.0.layers.1.bias",
        "modules.0.heads.a.weight", "modules.0.heads.a.bias",
        "modules.0.scale",
        "modules.1.weight", "modules.1.bias",
    ]
    assert all(isinstance(p, nn.Parameter) for _, p in named)
    keys = set(model.state_dict())
    assert {name for name, _ in named} <= keys
    # state_dict also has the buffers, and (as in PyTorch) the shared layer under both names.
    assert keys - {name for name, _ in named} == {
        "modules.1.running_mean", "modules.1.running_var",
        "modules.0.heads.b.modules.1.weight", "modules.0.heads.b.modules.1.bias"}
    assert [n for n, _ in shared.named_parameters("x")] == ["x.weight", "x.bias"]


def test_children_are_the_direct_submodules_once():
    model, shared = _model()
    block = model.modules[0]
    assert list(model.children()) == [block, model.modules[1]]
    assert list(block.children()) == [block.layers[0], shared, block.heads["a"],
                                      block.heads["b"]]
    assert list(nn.ReLU().children()) == []


# ----------------------------------------------------------------------------------------------
# Tensor's keywords: the course's calls still work, typos do not pass silently


def test_course_style_tensor_calls_still_work():
    a = np.arange(6.0).reshape(2, 3)
    t = ndl.Tensor(a, device=ndl.cpu(), dtype="float32", requires_grad=False)
    assert t.shape == (2, 3) and not t.requires_grad
    assert ndl.Tensor(t, device=ndl.cpu()).shape == (2, 3)
    assert ndl.Tensor(a, device=None, dtype=None).requires_grad
    assert ndl.Tensor(ndl.backend_ndarray.array(a), device=ndl.cpu()).shape == (2, 3)
    with pytest.raises(TypeError, match="requires_gard"):
        ndl.Tensor(a, requires_gard=False)
