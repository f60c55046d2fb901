"""RNNCell, RNN, LSTMCell, LSTM and Embedding: values against a numpy re-implementation,
gradients against finite differences, and PyTorch (copied weights) where installed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
import needle.nn as nn
from needle.errors import ShapeError
from needle.gradcheck import gradcheck


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_rnn_cell(x, h, p, act="tanh"):
    z = x @ p["W_ih"] + h @ p["W_hh"]
    if p.get("bias_ih") is not None:
        z = z + p["bias_ih"] + p["bias_hh"]
    return np.tanh(z) if act == "tanh" else np.maximum(z, 0)


def np_lstm_cell(x, h, c, p):
    z = x @ p["W_ih"] + h @ p["W_hh"]
    if p.get("bias_ih") is not None:
        z = z + p["bias_ih"] + p["bias_hh"]
    i, f, g, o = np.split(z, 4, axis=1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def params_of(cell) -> dict:
    return {name: (None if getattr(cell, name) is None else getattr(cell, name).numpy())
            for name in ("W_ih", "W_hh", "bias_ih", "bias_hh")}


def np_rnn(x, h0, cells, act="tanh"):
    hs = list(h0)
    for k, p in enumerate(cells):
        outs = []
        for t in range(x.shape[0]):
            hs[k] = np_rnn_cell(x[t], hs[k], p, act)
            outs.append(hs[k])
        x = np.stack(outs)
    return x, np.stack(hs)


def np_lstm(x, h0, c0, cells):
    hs, cs = list(h0), list(c0)
    for k, p in enumerate(cells):
        outs = []
        for t in range(x.shape[0]):
            hs[k], cs[k] = np_lstm_cell(x[t], hs[k], cs[k], p)
            outs.append(hs[k])
        x = np.stack(outs)
    return x, np.stack(hs), np.stack(cs)


# ----------------------------------------------------------------------------------------------
# Cells


def test_rnn_cell_parameters_follow_the_seeded_draws():
    np.random.seed(11)
    cell = nn.RNNCell(3, 4)
    np.random.seed(11)
    k = 1 / np.sqrt(4)
    for name, shape in [("W_ih", (3, 4)), ("W_hh", (4, 4)), ("bias_ih", (4,)),
                        ("bias_hh", (4,))]:
        want = np.random.rand(*shape) * 2 * k - k
        np.testing.assert_allclose(getattr(cell, name).numpy(), want, rtol=1e-6)
    assert len(cell.parameters()) == 4
    assert len(nn.RNNCell(3, 4, bias=False).parameters()) == 2


def test_lstm_cell_parameter_shapes_and_bounds():
    cell = nn.LSTMCell(5, 3)
    assert [p.shape for p in cell.parameters()] == [(5, 12), (3, 12), (12,), (12,)]
    assert all(np.abs(p.numpy()).max() <= 1 / np.sqrt(3) for p in cell.parameters())


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_h", [True, False])
def test_rnn_cell_forward(act, bias, with_h):
    rng = np.random.default_rng(0)
    cell = nn.RNNCell(4, 3, bias=bias, nonlinearity=act, dtype="float64")
    x, h = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    out = cell(tensor(x), tensor(h) if with_h else None)
    want = np_rnn_cell(x, h if with_h else np.zeros((5, 3)), params_of(cell), act)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_h", [True, False])
def test_lstm_cell_forward(with_h):
    rng = np.random.default_rng(1)
    cell = nn.LSTMCell(4, 3, dtype="float64")
    x, h, c = (rng.standard_normal(s) for s in [(2, 4), (2, 3), (2, 3)])
    h_new, c_new = cell(tensor(x), (tensor(h), tensor(c)) if with_h else None)
    if not with_h:
        h, c = np.zeros((2, 3)), np.zeros((2, 3))
    want_h, want_c = np_lstm_cell(x, h, c, params_of(cell))
    np.testing.assert_allclose(h_new.numpy(), want_h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c_new.numpy(), want_c, rtol=1e-10, atol=1e-12)


def test_cells_accept_plain_tensor_attributes_like_the_course_tests():
    # The course copies transposed torch weights in as plain Tensors (1-D biases).
    rng = np.random.default_rng(2)
    cell = nn.RNNCell(2, 3, device=ndl.cpu())
    p = {"W_ih": rng.standard_normal((2, 3)), "W_hh": rng.standard_normal((3, 3)),
         "bias_ih": rng.standard_normal(3), "bias_hh": rng.standard_normal(3)}
    for name, value in p.items():
        setattr(cell, name, ndl.Tensor(value.astype(np.float32), device=ndl.cpu()))
    x = rng.standard_normal((4, 2)).astype(np.float32)
    out = cell(ndl.Tensor(x, device=ndl.cpu()))
    np.testing.assert_allclose(out.numpy(), np_rnn_cell(x, np.zeros((4, 3)), p), rtol=1e-5,
                               atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Multi-layer sequence models


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.sampled_from(["tanh", "relu"]))
def test_rnn_forward(seq_len, batch, layers, with_h0, act):
    rng = np.random.default_rng(seq_len * 100 + batch * 10 + layers)
    rnn = nn.RNN(3, 4, num_layers=layers, nonlinearity=act, dtype="float64")
    x, h0 = rng.standard_normal((seq_len, batch, 3)), rng.standard_normal((layers, batch, 4))
    out, h_n = rnn(tensor(x), tensor(h0) if with_h0 else None)
    want_out, want_h = np_rnn(x, h0 if with_h0 else np.zeros_like(h0),
                              [params_of(c) for c in rnn.rnn_cells], act)
    assert out.shape == (seq_len, batch, 4) and h_n.shape == (layers, batch, 4)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), want_h, rtol=1e-10, atol=1e-12)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.booleans())
def test_lstm_forward(seq_len, batch, layers, with_h0):
    rng = np.random.default_rng(seq_len * 100 + batch * 10 + layers)
    lstm = nn.LSTM(3, 2, num_layers=layers, dtype="float64")
    x = rng.standard_normal((seq_len, batch, 3))
    h0, c0 = rng.standard_normal((2, layers, batch, 2))
    out, (h_n, c_n) = lstm(tensor(x), (tensor(h0), tensor(c0)) if with_h0 else None)
    if not with_h0:
        h0, c0 = np.zeros_like(h0), np.zeros_like(c0)
    want = np_lstm(x, h0, c0, [params_of(c) for c in lstm.lstm_cells])
    for got, exp in zip((out, h_n, c_n), want):
        np.testing.assert_allclose(got.numpy(), exp, rtol=1e-10, atol=1e-12)


def test_rnn_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    rnn = nn.RNN(2, 3, num_layers=2, dtype="float64")
    x, h0 = rng.standard_normal((3, 2, 2)), rng.standard_normal((2, 2, 3))
    cell = rnn.rnn_cells[1]

    def f(x, h0, w_ih, w_hh, b):
        cell.W_ih, cell.W_hh, cell.bias_hh = w_ih, w_hh, b
        out, h_n = rnn(x, h0)
        return out + h_n.sum(axes=(0,))

    assert gradcheck(f, tensor(x), tensor(h0), tensor(cell.W_ih.numpy()),
                     tensor(cell.W_hh.numpy()), tensor(cell.bias_hh.numpy()))


def test_lstm_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    lstm = nn.LSTM(2, 2, num_layers=2, dtype="float64")
    x = rng.standard_normal((3, 2, 2))
    h0, c0 = rng.standard_normal((2, 2, 2, 2))
    cell = lstm.lstm_cells[0]

    def f(x, h0, c0, w_ih, b_ih):
        cell.W_ih, cell.bias_ih = w_ih, b_ih
        out, (h_n, c_n) = lstm(x, (h0, c0))
        return out.sum(axes=(0,)) + h_n.sum(axes=(0,)) * c_n.sum(axes=(0,))

    assert gradcheck(f, tensor(x), tensor(h0), tensor(c0), tensor(cell.W_ih.numpy()),
                     tensor(cell.bias_ih.numpy()))


def test_every_parameter_gets_a_gradient_even_for_one_step_without_h0():
    for model in (nn.RNN(2, 3, num_layers=2), nn.LSTM(2, 3, num_layers=2)):
        out, _ = model(ndl.Tensor(np.ones((1, 2, 2), dtype=np.float32)))
        out.sum().backward()
        assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_sequence_models_check_input_shapes():
    with pytest.raises(ShapeError, match="RNN"):
        nn.RNN(3, 2)(ndl.Tensor(np.zeros((2, 3), dtype=np.float32)))
    with pytest.raises(ShapeError, match="LSTMCell"):
        nn.LSTMCell(3, 2)(ndl.Tensor(np.zeros((2, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNNCell(3, 2, nonlinearity="sigmoid")


# ----------------------------------------------------------------------------------------------
# Embedding


def test_embedding_forward_and_gradient():
    emb = nn.Embedding(5, 3, dtype="float64")
    ids = np.array([[0, 4], [4, 2], [1, 4]])
    out = emb(ndl.Tensor(ids, dtype="float64", requires_grad=False))
    weight = emb.weight.numpy()
    np.testing.assert_allclose(out.numpy(), weight[ids])
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(ndl.Tensor(g, dtype="float64"))
    want = np.zeros_like(weight)
    np.add.at(want, ids.reshape(-1), g.reshape(-1, 3))
    np.testing.assert_allclose(emb.weight.grad.numpy(), want, rtol=1e-12)


def test_embedding_weight_is_standard_normal_draw_and_ids_are_checked():
    np.random.seed(3)
    emb = nn.Embedding(4, 2)
    np.random.seed(3)
    np.testing.assert_allclose(emb.weight.numpy(), np.random.randn(4, 2), rtol=1e-6)
    with pytest.raises(ShapeError, match="Embedding"):
        emb(ndl.Tensor(np.array([[4.0]])))


# ----------------------------------------------------------------------------------------------
# PyTorch, with the weights copied across


def _copy_from_torch(cells, ref, dev):
    for k, cell in enumerate(cells):
        for ours, theirs, t in [("W_ih", "weight_ih", True), ("W_hh", "weight_hh", True),
                                ("bias_ih", "bias_ih", False), ("bias_hh", "bias_hh", False)]:
            value = getattr(ref, f"{theirs}_l{k}").detach().numpy()
            setattr(cell, ours, ndl.Tensor(value.T if t else value, device=dev))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_sequence_models_match_torch(kind):
    torch = pytest.importorskip("torch")
    dev = ndl.cpu()
    rng = np.random.default_rng(6)
    seq_len, batch, n_in, hidden, layers = 5, 3, 4, 6, 2
    x = rng.standard_normal((seq_len, batch, n_in)).astype(np.float32)
    h0, c0 = rng.standard_normal((2, layers, batch, hidden)).astype(np.float32)
    if kind == "rnn":
        ref, model = torch.nn.RNN(n_in, hidden, layers), nn.RNN(n_in, hidden, layers, device=dev)
        cells = model.rnn_cells
    else:
        ref, model = (torch.nn.LSTM(n_in, hidden, layers),
                      nn.LSTM(n_in, hidden, layers, device=dev))
        cells = model.lstm_cells
    _copy_from_torch(cells, ref, dev)
    xt = torch.tensor(x, requires_grad=True)
    X = ndl.Tensor(x, device=dev)
    if kind == "rnn":
        want, want_h = ref(xt, torch.tensor(h0))
        out, h_n = model(X, ndl.Tensor(h0, device=dev))
    else:
        want, (want_h, _) = ref(xt, (torch.tensor(h0), torch.tensor(c0)))
        out, (h_n, _) = model(X, (ndl.Tensor(h0, device=dev), ndl.Tensor(c0, device=dev)))
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(h_n.numpy(), want_h.detach().numpy(), atol=1e-5, rtol=1e-5)
    want.sum().backward()
    out.sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), xt.grad.numpy(), atol=1e-5, rtol=1e-5)
    for k, cell in enumerate(cells):
        np.testing.assert_allclose(cell.W_ih.grad.numpy(),
                                   getattr(ref, f"weight_ih_l{k}").grad.numpy().T,
                                   atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(cell.bias_hh.grad.numpy(),
                                   getattr(ref, f"bias_hh_l{k}").grad.numpy(),
                                   atol=1e-4, rtol=1e-4)
