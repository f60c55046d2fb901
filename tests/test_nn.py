"""needle.nn: every module of nn_basic against numpy re-derivations and finite differences."""

import math

import numpy as np
import pytest
from conftest import tensor
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
import needle.nn as nn
from needle.gradcheck import gradcheck


def f32(arr) -> ndl.Tensor:
    return ndl.Tensor(np.asarray(arr, dtype=np.float32), dtype="float32", requires_grad=False)


def rng_values(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Module infrastructure


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.blocks = [nn.ReLU(), nn.Linear(3, 3, bias=False)]
        self.heads = {"x": nn.Linear(3, 1), "y": (nn.Dropout(0.2), nn.BatchNorm1d(3))}
        self.not_a_param = ndl.Tensor([1.0])

    def forward(self, x):
        return x


def test_parameters_in_definition_order_and_only_parameters():
    m = Tiny()
    params = m.parameters()
    expected = [m.a.weight, m.a.bias, m.blocks[1].weight, m.heads["x"].weight,
                m.heads["x"].bias, m.heads["y"][1].weight, m.heads["y"][1].bias]
    assert [id(p) for p in params] == [id(p) for p in expected]
    assert all(isinstance(p, nn.Parameter) for p in params)
    assert m.num_parameters() == 2 * 3 + 3 + 9 + 3 + 1 + 3 + 3


def test_shared_parameter_is_listed_once():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(model.parameters()) == 2


def test_train_eval_recurse_through_lists_tuples_dicts():
    m = Tiny()
    children = m._children()
    assert len(children) == 6
    m.eval()
    assert not m.training and all(not c.training for c in children)
    m.train()
    assert m.training and all(c.training for c in children)


def test_call_is_forward():
    x = f32([[1.0, -1.0]])
    assert nn.Identity()(x) is x


def test_repr_is_a_tree():
    model = nn.Sequential(nn.Linear(4, 2), nn.Residual(nn.Sequential(nn.ReLU())), nn.Dropout(0.5))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=2, bias=True)\n"
        "  (1): Residual(\n"
        "    (fn): Sequential(\n"
        "      (0): ReLU()\n"
        "    )\n"
        "  )\n"
        "  (2): Dropout(p=0.5)\n"
        ")"
    )


def test_state_dict_names_parameters_and_buffers():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2, bias=False))
    sd = model.state_dict()
    assert list(sd) == ["modules.0.weight", "modules.0.bias", "modules.1.weight", "modules.1.bias",
                        "modules.1.running_mean", "modules.1.running_var", "modules.2.weight"]
    assert sd["modules.0.weight"].shape == (3, 4)
    np.testing.assert_array_equal(sd["modules.1.running_var"], np.ones(4))
    # values are copies: changing them does not change the model
    sd["modules.0.weight"][:] = 0
    assert np.abs(model.modules[0].weight.numpy()).sum() > 0


def test_load_state_dict_copies_values_in():
    src = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    src(f32(rng_values(5, 3)))  # moves running statistics
    dst = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert isinstance(dst.modules[0].weight, nn.Parameter)
    assert np.dtype(dst.modules[0].weight.dtype) == np.float32


# ----------------------------------------------------------------------------------------------
# Linear


def test_linear_init_draws_weight_then_bias():
    np.random.seed(11)
    lin = nn.Linear(5, 3)
    np.random.seed(11)
    bw = math.sqrt(2) * math.sqrt(3 / 5)
    bb = math.sqrt(2) * math.sqrt(3 / 3)
    w = np.random.rand(5, 3) * 2 * bw - bw
    b = (np.random.rand(3, 1) * 2 * bb - bb).reshape(1, 3)
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (1, 3)
    np.testing.assert_allclose(lin.weight.numpy(), w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lin.bias.numpy(), b, rtol=1e-6, atol=1e-6)
    assert lin.weight.requires_grad and lin.bias.requires_grad


@given(batch=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
       n_in=st.integers(1, 5), n_out=st.integers(1, 4), bias=st.booleans())
def test_linear_forward_any_rank(batch, n_in, n_out, bias):
    lin = nn.Linear(n_in, n_out, bias=bias)
    x = rng_values(*batch, n_in)
    expected = x @ lin.weight.numpy()
    if bias:
        expected = expected + lin.bias.numpy().reshape(n_out)
    out = lin(f32(x))
    assert out.shape == batch + (n_out,)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_linear_accepts_1d_bias_assigned_via_data():
    lin = nn.Linear(4, 3)
    lin.bias.data = f32([1.0, 2.0, 3.0])
    x = rng_values(1, 2, 4)
    np.testing.assert_allclose(lin(f32(x)).numpy(), x @ lin.weight.numpy() + [1, 2, 3],
                               rtol=1e-5, atol=1e-5)


def test_linear_gradients_match_finite_differences():
    lin = nn.Linear(3, 2, dtype="float64")
    x = tensor(rng_values(4, 3).astype(np.float64))
    w = tensor(lin.weight.numpy())
    b = tensor(lin.bias.numpy())

    def f(x, w, b):
        lin.weight, lin.bias = w, b
        return lin(x)

    assert gradcheck(f, x, w, b)


def test_linear_rejects_wrong_feature_count():
    with pytest.raises(ValueError, match=r"Linear.*\(2, 5\).*expected 4"):
        nn.Linear(4, 3)(f32(np.zeros((2, 5))))


# ----------------------------------------------------------------------------------------------
# Simple layers


def test_flatten_relu_tanh_sigmoid():
    x = rng_values(2, 3, 4)
    np.testing.assert_array_equal(nn.Flatten()(f32(x)).numpy(), x.reshape(2, 12))
    np.testing.assert_array_equal(nn.ReLU()(f32(x)).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.Tanh()(f32(x)).numpy(), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(f32(x)).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-6)


def test_sequential_applies_in_order_and_exposes_modules():
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    seq = nn.Sequential(a, nn.ReLU(), b)
    assert seq.modules[0] is a and seq.modules[2] is b and len(seq.modules) == 3
    x = rng_values(5, 3)
    h = np.maximum(x @ a.weight.numpy() + a.bias.numpy(), 0)
    np.testing.assert_allclose(seq(f32(x)).numpy(), h @ b.weight.numpy() + b.bias.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_residual_adds_input():
    lin = nn.Linear(3, 3)
    x = rng_values(2, 3)
    np.testing.assert_allclose(nn.Residual(lin)(f32(x)).numpy(), lin(f32(x)).numpy() + x,
                               rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# SoftmaxLoss


def _np_softmax_loss(z, y):
    z = z.astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    return np.mean(lse - z[np.arange(len(y)), y])


def test_softmax_loss_value():
    z = rng_values(6, 5) * 3
    y = np.array([0, 4, 2, 2, 1, 3])
    loss = nn.SoftmaxLoss()(f32(z), ndl.Tensor(y, requires_grad=False))
    assert loss.shape == ()
    np.testing.assert_allclose(loss.numpy(), _np_softmax_loss(z, y), rtol=1e-5)


def test_softmax_loss_is_stable_for_huge_logits():
    z = np.array([[1e10, 0.0], [0.0, 1e10]], dtype=np.float32)
    loss = nn.SoftmaxLoss()(f32(z), ndl.Tensor([0, 0], requires_grad=False))
    np.testing.assert_allclose(loss.numpy(), 0.5e10, rtol=1e-5)


def test_softmax_loss_gradient():
    y = ndl.Tensor([1, 0, 2], requires_grad=False)
    z = tensor(rng_values(3, 3).astype(np.float64))
    assert gradcheck(lambda z: nn.SoftmaxLoss()(z, y), z)


# ----------------------------------------------------------------------------------------------
# Normalisation


def _np_norm(x, axis):
    mean = x.mean(axis, keepdims=True)
    var = ((x - mean) ** 2).mean(axis, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5)


def test_batchnorm1d_train_forward_and_running_stats():
    bn = nn.BatchNorm1d(4, momentum=0.1)
    bn.weight.data = f32([1.0, 2.0, 0.5, -1.0])
    bn.bias.data = f32([0.0, 1.0, -1.0, 0.5])
    x = rng_values(8, 4) * 3 + 1
    out = bn(f32(x))
    expected = _np_norm(x.astype(np.float64), 0) * [1, 2, 0.5, -1] + [0, 1, -1, 0.5]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
    # running statistics use the biased batch variance
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * x.var(0), rtol=1e-5)
    assert np.dtype(bn.running_mean.dtype) == np.float32
    assert not bn.running_mean.requires_grad


def test_batchnorm1d_eval_uses_running_stats_and_params_exclude_buffers():
    bn = nn.BatchNorm1d(3)
    assert len(bn.parameters()) == 2 and bn.num_parameters() == 6
    bn.running_mean = f32([1.0, -1.0, 0.0])
    bn.running_var = f32([4.0, 1.0, 0.25])
    bn.eval()
    x = rng_values(5, 3)
    expected = (x - [1, -1, 0]) / np.sqrt(np.array([4, 1, 0.25]) + 1e-5)
    np.testing.assert_allclose(bn(f32(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_batchnorm1d_gradients_match_finite_differences():
    bn = nn.BatchNorm1d(3, dtype="float64")
    x = tensor(rng_values(5, 3).astype(np.float64))
    w = tensor([1.0, 2.0, -0.5])
    b = tensor([0.1, 0.0, 0.3])

    def f(x, w, b):
        bn.weight, bn.bias = w, b
        return bn(x)

    assert gradcheck(f, x, w, b)


def test_batchnorm2d_normalises_each_channel():
    bn = nn.BatchNorm2d(3)
    x = rng_values(2, 3, 4, 5)
    out = bn(f32(x))
    assert out.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(out.numpy(), _np_norm(x.astype(np.float64), (0, 2, 3)),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.mean((0, 2, 3)), atol=1e-6)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
       dim=st.integers(2, 6))
def test_layernorm1d_normalises_last_axis(shape, dim):
    ln = nn.LayerNorm1d(dim)
    ln.weight.data = f32(np.arange(1, dim + 1))
    x = rng_values(*shape, dim) * 2
    expected = _np_norm(x.astype(np.float64), -1) * np.arange(1, dim + 1)
    np.testing.assert_allclose(ln(f32(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_layernorm1d_gradients_match_finite_differences():
    ln = nn.LayerNorm1d(4, dtype="float64")
    x = tensor(rng_values(3, 4).astype(np.float64))
    w = tensor([1.0, 0.5, -1.0, 2.0])
    b = tensor([0.0, 0.1, 0.2, 0.3])

    def f(x, w, b):
        ln.weight, ln.bias = w, b
        return ln(x)

    assert gradcheck(f, x, w, b)


# ----------------------------------------------------------------------------------------------
# Dropout


def test_dropout_mask_is_randb_with_keep_probability():
    x = rng_values(6, 7)
    np.random.seed(9)
    out = nn.Dropout(0.3)(f32(x))
    np.random.seed(9)
    keep = np.random.rand(6, 7) <= 0.7
    np.testing.assert_allclose(out.numpy(), x * keep / 0.7, rtol=1e-6, atol=1e-6)


def test_dropout_is_identity_in_eval_and_draws_nothing():
    x = f32(rng_values(3, 3))
    drop = nn.Dropout(0.5).eval()
    np.random.seed(1)
    assert drop(x) is x
    assert np.random.rand() == np.random.RandomState(1).rand()


def test_dropout_p_one_zeros_everything():
    assert np.all(nn.Dropout(1.0)(f32(rng_values(4, 4))).numpy() == 0)


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError):
        nn.Dropout(1.5)
