"""The Transformer computes, in float32, exactly what the course's reference computes.

The course's golden values for hw4_extra were produced by a reference written with plain
Needle ops: its attention product is the skeleton's broadcast-multiply-sum (not a matmul
kernel), softmax subtracts the row maximum, LayerNorm divides the centred input by
``(var + eps) ** 0.5``, Dropout is ``x * randb(p=1-p) / (1-p)`` and Linear is
``X @ W + bias``. In float32 a different order of the same arithmetic changes the last
bits, and four layers amplify that to the size of the course's 1e-5 tolerance: one
element of ``test_transformer_model[cpu-0.1-False-32-8-4-64-27-11-8]`` missed it while
needle's attention used a BLAS matmul and ``logits / np.sqrt(d)`` (a numpy float64
scalar) silently turned everything after it into float64 (1.1e-5 from the float32
reference below). So the modules are checked bit for bit against that arithmetic,
written out here twice: once with plain needle ops, once in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
from needle import init, nn, ops

F32 = np.float32


# ----------------------------------------------------------------------------------------------
# The reference, with plain needle ops on the model's own parameters


def ops_linear(x: ndl.Tensor, lin: nn.Linear) -> ndl.Tensor:
    lead = x.shape[:-1]
    flat = ops.reshape(x, (int(np.prod(lead)), x.shape[-1]))
    out = flat @ lin.weight
    if lin.bias is not None:
        out = out + ops.broadcast_to(ops.reshape(lin.bias, (1, lin.out_features)), out.shape)
    return ops.reshape(out, (*lead, lin.out_features))


def ops_layernorm(x: ndl.Tensor, ln: nn.LayerNorm1d) -> ndl.Tensor:
    rows = int(np.prod(x.shape[:-1]))
    flat = ops.reshape(x, (rows, ln.dim))
    mean = ops.broadcast_to(ops.reshape(ops.summation(flat, axes=(1,)) / ln.dim, (rows, 1)),
                            flat.shape)
    centred = flat - mean
    var = ops.broadcast_to(
        ops.reshape(ops.summation(centred ** 2, axes=(1,)) / ln.dim, (rows, 1)), flat.shape)
    w = ops.broadcast_to(ops.reshape(ln.weight, (1, ln.dim)), flat.shape)
    b = ops.broadcast_to(ops.reshape(ln.bias, (1, ln.dim)), flat.shape)
    return ops.reshape(w * centred / ((var + ln.eps) ** 0.5) + b, x.shape)


def ops_dropout(x: ndl.Tensor, drop: nn.Dropout) -> ndl.Tensor:
    if not drop.training:
        return x
    keep = init.randb(*x.shape, p=1 - drop.p, device=x.device, dtype=x.dtype)
    return x * keep / (1 - drop.p)


def ops_batched_product(a: ndl.Tensor, b: ndl.Tensor) -> ndl.Tensor:
    """(..., m, k) @ (..., k, n) by broadcasting to (..., m, k, n), multiplying, summing k."""
    *batch, m, k = a.shape
    n = b.shape[-1]
    wide = (*batch, m, k, n)
    prod = (ops.broadcast_to(ops.reshape(a, (*batch, m, k, 1)), wide)
            * ops.broadcast_to(ops.reshape(b, (*batch, 1, k, n)), wide))
    return ops.summation(prod, axes=(len(wide) - 2,))


def ops_softmax(z: ndl.Tensor) -> ndl.Tensor:
    top = ndl.Tensor(z.realize_cached_data().max(axis=3), device=z.device, dtype=z.dtype,
                     requires_grad=False)
    row = (*z.shape[:-1], 1)
    e = ops.exp(z - ops.broadcast_to(ops.reshape(top, row), z.shape))
    return e / ops.broadcast_to(ops.reshape(ops.summation(e, axes=(3,)), row), z.shape)


def ops_attention(mha: nn.MultiHeadAttention, q, k, v):
    logits = ops_batched_product(q, ops.transpose(k)) / np.sqrt(q.shape[-1])
    if mha.causal:
        i, j = logits.shape[-2:]
        mask = -np.finfo(np.float32).max * np.triu(np.ones((1, 1, i, j), np.float32), j - i + 1)
        logits = logits + ops.broadcast_to(ndl.Tensor(mask, device=q.device,
                                                      requires_grad=False), logits.shape)
    probs = ops_dropout(ops_softmax(logits), mha.dropout)
    return ops_batched_product(probs, v), probs


def ops_attention_layer(layer: nn.AttentionLayer, x: ndl.Tensor) -> ndl.Tensor:
    b, t, _ = x.shape
    h, d = layer.num_head, layer.dim_head

    def heads(y):
        return ops.transpose(ops.reshape(y, (b, t, h, d)), (1, 2))

    q = heads(ops_linear(ops_layernorm(x, layer.prenorm_q), layer.q_projection))
    k = heads(ops_linear(ops_layernorm(x, layer.prenorm_k), layer.k_projection))
    v = heads(ops_linear(ops_layernorm(x, layer.prenorm_v), layer.v_projection))
    out, _ = ops_attention(layer.attn, q, k, v)
    out = ops.reshape(ops.transpose(out, (1, 2)), (b, t, h * d))
    return ops_linear(out, layer.out_projection)


def ops_transformer_layer(layer: nn.TransformerLayer, x: ndl.Tensor) -> ndl.Tensor:
    x = x + ops_dropout(ops_attention_layer(layer.attn, x), layer.dropout)
    hidden = ops.relu(ops_linear(ops_layernorm(x, layer.layernorm), layer.linear1))
    hidden = ops_dropout(hidden, layer.dropout)
    return x + ops_dropout(ops_linear(hidden, layer.linear2), layer.dropout)


def ops_transformer(model: nn.Transformer, x: ndl.Tensor) -> ndl.Tensor:
    """``x`` is (batch, length, features)."""
    length = x.shape[1]
    pos = ndl.Tensor(model.positional_embedding.weight.numpy()[:length], device=x.device,
                     requires_grad=False)
    x = x + ops.broadcast_to(ops.reshape(pos, (1, length, x.shape[2])), x.shape)
    for layer in model.layers.modules:
        x = ops_transformer_layer(layer, x)
    return x


# ----------------------------------------------------------------------------------------------
# The same arithmetic in numpy float32 (independent of needle's ops)


def np_linear(x, lin):
    out = x.reshape(-1, x.shape[-1]) @ lin.weight.numpy()
    if lin.bias is not None:
        out = out + lin.bias.numpy().reshape(1, -1)
    return out.reshape(*x.shape[:-1], -1)


def np_layernorm(x, ln):
    n = F32(ln.dim)
    mean = x.sum(axis=-1, keepdims=True) / n
    c = x - mean
    var = (c * c).sum(axis=-1, keepdims=True) / n
    return ln.weight.numpy() * c / np.sqrt(var + F32(ln.eps)) + ln.bias.numpy()


def np_dropout(x, drop):
    if not drop.training:
        return x
    return x * (np.random.rand(*x.shape) <= 1 - drop.p).astype(F32) / F32(1 - drop.p)


def np_product(a, b):
    """Sum over k of the rounded products, added in k order (numpy's own ``sum`` may add
    them pairwise instead, depending on the memory layout)."""
    prod = a[..., :, :, None] * b[..., None, :, :]
    out = np.zeros(prod.shape[:-2] + prod.shape[-1:], F32)
    for i in range(prod.shape[-2]):
        out = out + prod[..., i, :]
    return out


def np_transformer_layer(layer, x):
    b, t, _ = x.shape
    att = layer.attn
    h, d = att.num_head, att.dim_head

    def heads(y):
        return y.reshape(b, t, h, d).transpose(0, 2, 1, 3)

    q = heads(np_linear(np_layernorm(x, att.prenorm_q), att.q_projection))
    k = heads(np_linear(np_layernorm(x, att.prenorm_k), att.k_projection))
    v = heads(np_linear(np_layernorm(x, att.prenorm_v), att.v_projection))
    z = np_product(q, k.transpose(0, 1, 3, 2)) / F32(np.sqrt(d))
    if att.attn.causal:
        z = z + -np.finfo(np.float32).max * np.triu(np.ones((t, t), F32), 1)
    e = np.exp(z - z.max(axis=3, keepdims=True))
    probs = np_dropout(e / e.sum(axis=3, keepdims=True), att.attn.dropout)
    out = np_product(probs, v).transpose(0, 2, 1, 3).reshape(b, t, h * d)
    x = x + np_dropout(np_linear(out, att.out_projection), layer.dropout)
    hidden = np.maximum(np_linear(np_layernorm(x, layer.layernorm), layer.linear1), 0)
    hidden = np_dropout(hidden, layer.dropout)
    return x + np_dropout(np_linear(hidden, layer.linear2), layer.dropout)


def np_transformer(model, x):
    x = x + model.positional_embedding.weight.numpy()[:x.shape[1]][None]
    for layer in model.layers.modules:
        x = np_transformer_layer(layer, x)
    return x


# ----------------------------------------------------------------------------------------------
# The checks


def _course_model(batch, seq_len, num_layers, causal, dropout, batch_first=True):
    """The hw4_extra test_transformer_model setup (seed, input, construction)."""
    np.random.seed(19943)
    x = np.random.randn(batch, seq_len, 27).astype(np.float32)
    model = nn.Transformer(27, 64, num_layers, num_head=8, dim_head=32, dropout=dropout,
                           causal=causal, device=ndl.cpu(), batch_first=batch_first)
    return model, x


CASES = [  # (batch, seq_len, num_layers, causal, dropout)
    (8, 11, 4, False, 0.1),  # the case that missed the golden value
    (8, 11, 4, True, 0.1),
    (8, 5, 2, True, 0.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_transformer_is_bitwise_the_plain_ops_reference(case):
    model, x = _course_model(*case)
    state = np.random.get_state()  # after construction: the dropout masks come next
    got = model(ndl.Tensor(x, device=ndl.cpu()))[0].numpy()
    np.random.set_state(state)
    with ndl.no_grad():
        want_ops = ops_transformer(model, ndl.Tensor(x, device=ndl.cpu())).numpy()
    np.random.set_state(state)
    want_np = np_transformer(model, x)
    assert got.dtype == np.float32 and got.shape == x.shape
    # Not a tolerance: any reordering of the float32 arithmetic shows up here.
    np.testing.assert_array_equal(got, want_ops)
    np.testing.assert_array_equal(got, want_np)


def test_sequence_first_layout_is_the_same_computation():
    model, x = _course_model(2, 5, 2, True, 0.1, batch_first=False)
    state = np.random.get_state()
    got = model(ndl.Tensor(x.transpose(1, 0, 2), device=ndl.cpu()))[0].numpy()
    np.random.set_state(state)
    np.testing.assert_array_equal(got.transpose(1, 0, 2), np_transformer(model, x))


def test_attention_product_is_the_broadcast_sum_and_matches_a_matmul():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 5, 32)).astype(F32)
    b = rng.standard_normal((2, 3, 32, 7)).astype(F32)
    mha = nn.MultiHeadAttention()
    got = mha.matmul(ndl.Tensor(a, device=ndl.cpu()), ndl.Tensor(b, device=ndl.cpu()))
    assert got.shape == (2, 3, 5, 7)
    np.testing.assert_array_equal(got.numpy(), np_product(a, b))
    np.testing.assert_allclose(got.numpy(), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ndl.errors.ShapeError, match="MultiHeadAttention.matmul"):
        mha.matmul(ndl.Tensor(a, device=ndl.cpu()), ndl.Tensor(a, device=ndl.cpu()))


def test_layernorm_is_weight_times_centred_over_std_bitwise():
    rng = np.random.default_rng(1)
    ln = nn.LayerNorm1d(27)
    ln.weight.data = ndl.Tensor(rng.uniform(0.5, 1.5, 27).astype(F32), requires_grad=False)
    ln.bias.data = ndl.Tensor(rng.uniform(-0.5, 0.5, 27).astype(F32), requires_grad=False)
    x = rng.standard_normal((4, 3, 27)).astype(F32)
    got = ln(ndl.Tensor(x)).numpy()
    np.testing.assert_array_equal(got, ops_layernorm(ndl.Tensor(x), ln).numpy())
    np.testing.assert_array_equal(got, np_layernorm(x, ln))


# ----------------------------------------------------------------------------------------------
# ordered_matmul, and numpy scalars that must not promote float32


def test_ordered_matmul_is_layout_independent_and_broadcasts_batches():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 6, 40)).astype(F32)
    b = rng.standard_normal((40, 6)).astype(F32)
    got = ndl.ordered_matmul(ndl.Tensor(a), ndl.Tensor(b)).numpy()
    assert got.shape == (3, 6, 6) and got.dtype == np.float32
    want = np_product(a, np.broadcast_to(b, (3, 40, 6)))
    np.testing.assert_array_equal(got, want)
    # The same numbers whatever the operands' memory layout (numpy's sum would change).
    bt = ndl.transpose(ndl.Tensor(np.ascontiguousarray(b.T)))
    np.testing.assert_array_equal(ndl.ordered_matmul(ndl.Tensor(a), bt).numpy(), want)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_ordered_matmul_gradients_match_finite_differences():
    from needle.gradcheck import gradcheck, gradgradcheck
    rng = np.random.default_rng(3)
    a = ndl.Tensor(rng.standard_normal((2, 3, 4)), dtype="float64")
    b = ndl.Tensor(rng.standard_normal((4, 2)), dtype="float64")
    assert gradcheck(ndl.ordered_matmul, a, b)
    assert gradgradcheck(ndl.ordered_matmul, a, b)


def test_ordered_matmul_rejects_operands_that_do_not_fit():
    a = ndl.Tensor(np.ones((2, 3, 4), F32))
    with pytest.raises(ndl.errors.ShapeError, match=r"ordered_matmul.*\(2, 3, 4\).*\(3, 4\)"):
        ndl.ordered_matmul(a, ndl.Tensor(np.ones((3, 4), F32)))
    with pytest.raises(ndl.errors.ShapeError, match="batch dims"):
        ndl.ordered_matmul(a, ndl.Tensor(np.ones((3, 4, 2), F32)))


@pytest.mark.parametrize("scalar", [np.float64(np.sqrt(32)), np.float32(2.5), np.int64(3)])
def test_numpy_scalars_keep_float32(scalar):
    # np.float64 is a float subclass; kept as is it promoted the Transformer's attention
    # (logits / np.sqrt(d)) and everything after it to float64.
    x = ndl.Tensor(np.linspace(-1, 1, 6, dtype=F32))
    for y in (x / scalar, x * scalar, x + scalar, x - scalar, abs(x) ** scalar):
        assert np.dtype(y.dtype) == np.float32
    np.testing.assert_array_equal((x / scalar).numpy(),
                                  np.linspace(-1, 1, 6, dtype=F32) / F32(scalar))
