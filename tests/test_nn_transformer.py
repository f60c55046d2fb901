"""MultiHeadAttention, AttentionLayer, TransformerLayer and Transformer against a numpy
re-implementation, with gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tensor
from hypothesis import given
from hypothesis import strategies as st

import needle as ndl
import needle.nn as nn
from needle.gradcheck import gradcheck


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, causal):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        i, j = logits.shape[-2:]
        # query a sees key b when b <= a + (j - i): the last query sees every key
        visible = np.arange(j)[None, :] <= np.arange(i)[:, None] + (j - i)
        logits = np.where(visible, logits, -np.inf)
    probs = np_softmax(logits)
    return probs @ v, probs


def np_layernorm(x, ln):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + ln.eps) * ln.weight.numpy() + ln.bias.numpy()


def np_linear(x, lin):
    out = x @ lin.weight.numpy()
    return out if lin.bias is None else out + lin.bias.numpy().reshape(-1)


def np_attention_layer(layer, q, k, v, causal):
    def heads(x):
        b, t, _ = x.shape
        return x.reshape(b, t, layer.num_head, layer.dim_head).transpose(0, 2, 1, 3)

    Q = heads(np_linear(np_layernorm(q, layer.prenorm_q), layer.q_projection))
    K = heads(np_linear(np_layernorm(k, layer.prenorm_k), layer.k_projection))
    V = heads(np_linear(np_layernorm(v, layer.prenorm_v), layer.v_projection))
    out, _ = np_attention(Q, K, V, causal)
    b, _, t, _ = out.shape
    return np_linear(out.transpose(0, 2, 1, 3).reshape(b, t, -1), layer.out_projection)


def np_transformer_layer(layer, x, causal):
    x = x + np_attention_layer(layer.attn, x, x, x, causal)
    hidden = np.maximum(np_linear(np_layernorm(x, layer.layernorm), layer.linear1), 0)
    return x + np_linear(hidden, layer.linear2)


# ----------------------------------------------------------------------------------------------
# MultiHeadAttention


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 4), st.booleans())
def test_multihead_attention_matches_numpy(batch, heads, q_len, k_len, dim, causal):
    if causal and k_len < q_len:
        k_len = q_len  # every query must see at least one key
    rng = np.random.default_rng(batch + 10 * heads + 100 * q_len + 1000 * k_len)
    q = rng.standard_normal((batch, heads, q_len, dim))
    k = rng.standard_normal((batch, heads, k_len, dim))
    v = rng.standard_normal((batch, heads, k_len, 3))
    attn = nn.MultiHeadAttention(causal=causal, dtype="float64")
    out, probs = attn(tensor(q), tensor(k), tensor(v))
    want_out, want_probs = np_attention(q, k, v, causal)
    np.testing.assert_allclose(probs.numpy(), want_probs, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-9, atol=1e-12)


def test_causal_mask_blocks_the_future():
    attn = nn.MultiHeadAttention(causal=True)
    mask = attn.create_causal_mask(3, 3, ndl.cpu()).numpy()
    assert mask.shape == (1, 1, 3, 3)
    assert np.all(mask[0, 0][np.tril_indices(3)] == 0)
    assert np.all(mask[0, 0][np.triu_indices(3, 1)] == -np.finfo(np.float32).max)
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((1, 1, 3, 2)).astype(np.float32))
    _, probs = attn(x, x, x)
    assert np.all(np.triu(probs.numpy()[0, 0], 1) == 0)
    np.testing.assert_allclose(probs.numpy().sum(axis=-1), 1, rtol=1e-6)


def test_dropout_applies_to_the_probabilities_with_one_draw():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((3, 2, 2, 4, 3))
    attn = nn.MultiHeadAttention(dropout=0.3, causal=False, dtype="float64")
    np.random.seed(5)
    out, probs = attn(tensor(q), tensor(k), tensor(v))
    np.random.seed(5)
    keep = np.random.rand(2, 2, 4, 4) <= 0.7
    _, clean = np_attention(q, k, v, False)
    want = clean * keep / 0.7
    np.testing.assert_allclose(probs.numpy(), want, rtol=1e-9)
    np.testing.assert_allclose(out.numpy(), want @ v, rtol=1e-9)
    attn.eval()
    _, probs = attn(tensor(q), tensor(k), tensor(v))
    np.testing.assert_allclose(probs.numpy(), clean, rtol=1e-9)


def test_attention_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((3, 1, 2, 3, 2))
    attn = nn.MultiHeadAttention(causal=True, dtype="float64")
    assert gradcheck(lambda a, b, c: attn(a, b, c)[0], tensor(q), tensor(k), tensor(v))


# ----------------------------------------------------------------------------------------------
# Layers


def _randomise(module, rng):
    """Non-trivial LayerNorm parameters, so that they are actually tested."""
    for m in [module] + module._children():
        if isinstance(m, nn.LayerNorm1d):
            m.weight = nn.Parameter(tensor(rng.uniform(0.5, 1.5, m.dim)))
            m.bias = nn.Parameter(tensor(rng.uniform(-0.5, 0.5, m.dim)))


@pytest.mark.parametrize("causal", [True, False])
def test_attention_layer_matches_numpy(causal):
    rng = np.random.default_rng(3)
    layer = nn.AttentionLayer(6, 2, 3, k_features=5, v_features=4, out_features=7,
                              causal=causal, dtype="float64")
    _randomise(layer, rng)
    q, k, v = (rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 4, 5)),
               rng.standard_normal((2, 4, 4)))
    out = layer(tensor(q), tensor(k), tensor(v))
    assert out.shape == (2, 4, 7)
    np.testing.assert_allclose(out.numpy(), np_attention_layer(layer, q, k, v, causal),
                               rtol=1e-9, atol=1e-12)


def test_attention_layer_construction_order_and_defaults():
    layer = nn.AttentionLayer(8, 2, 4)
    shapes = [p.shape for p in layer.parameters()]
    # prenorm q, k, v (weight, bias each), then q/k/v projections, then the output one.
    assert shapes == [(8,)] * 6 + [(8, 8)] * 3 + [(8, 8)]
    assert all(lin.bias is None for lin in (layer.q_projection, layer.out_projection))
    x = ndl.Tensor(np.ones((1, 3, 8), dtype=np.float32))
    assert layer(x).shape == (1, 3, 8)  # k and v default to q


def test_transformer_layer_matches_numpy_and_its_gradients():
    rng = np.random.default_rng(4)
    layer = nn.TransformerLayer(6, 2, 3, 5, causal=True, dtype="float64")
    _randomise(layer, rng)
    x = rng.standard_normal((2, 3, 6))
    np.testing.assert_allclose(layer(tensor(x)).numpy(), np_transformer_layer(layer, x, True),
                               rtol=1e-9, atol=1e-12)
    assert gradcheck(lambda t: layer(t), tensor(x[:1]))


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_matches_numpy(batch_first):
    rng = np.random.default_rng(5)
    model = nn.Transformer(6, 8, 2, num_head=2, dim_head=3, causal=True, dtype="float64",
                           batch_first=batch_first, sequence_len=10)
    x = rng.standard_normal((2, 4, 6))  # (batch, length, features)
    inp = x if batch_first else x.transpose(1, 0, 2)
    out, state = model(tensor(inp))
    pos = model.positional_embedding.weight.numpy()[:4]
    want = x + pos[None]
    for layer in model.layers.modules:
        want = np_transformer_layer(layer, want, True)
    got = out.numpy() if batch_first else out.numpy().transpose(1, 0, 2)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert state.shape == out.shape and not state.numpy().any()


def test_transformer_parameter_order_and_gradients_reach_everything():
    np.random.seed(0)
    model = nn.Transformer(4, 6, 1, num_head=2, dim_head=2, dropout=0.1, sequence_len=5)
    np.random.seed(0)
    # The positional embedding is created (and drawn) before the layers.
    np.testing.assert_allclose(model.parameters()[0].numpy(), np.random.randn(5, 4),
                               rtol=1e-6)
    out, _ = model(ndl.Tensor(np.random.default_rng(0).standard_normal((3, 2, 4))))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
