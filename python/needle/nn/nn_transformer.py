"""Multi-head attention and the (pre-norm) Transformer.

Module construction order and every random draw (parameters, then dropout masks in
forward order) follow the reference Needle, so seeded runs reproduce its values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import init, ops
from ..autograd import Tensor
from ..errors import ShapeError
from .nn_basic import Dropout, LayerNorm1d, Linear, Module, ReLU, Sequential
from .nn_sequence import Embedding

__all__ = ["MultiHeadAttention", "AttentionLayer", "TransformerLayer", "Transformer"]


class MultiHeadAttention(Module):
    """Scaled dot-product attention over (batch, heads, length, dim) tensors.

    Parameters
    ----------
    dropout : float
        Dropout on the attention probabilities (one ``rand`` draw of their shape per
        call in training mode).
    causal : bool
        Forbid attending to later keys (the mask aligns the last query with the last key).
    device, dtype
        Where constants are created.
    """

    def __init__(self, *, dropout: float = 0.0, causal: bool = False, device: Any = None,
                 dtype: str = "float32") -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        self.causal = causal
        self.dropout = Dropout(dropout)

    def create_causal_mask(self, i: int, j: int, device: Any, dtype: str = "float32") -> Tensor:
        """(1, 1, i, j): 0 where query ``a`` may see key ``b`` (b <= a + j - i), else -max."""
        above = np.triu(np.ones((1, 1, i, j), dtype=np.float32), j - i + 1)
        return Tensor(-np.finfo(np.float32).max * above, device=device, dtype=dtype,
                      requires_grad=False)

    def matmul(self, a: Tensor, b_transpose: Tensor) -> Tensor:
        """Batched product ``(..., m, k) @ (..., k, n) -> (..., m, n)``.

        The course's helper broadcasts both operands to (..., m, k, n), multiplies and
        sums over k; :func:`ops.ordered_matmul` does that arithmetic (each product rounded,
        the k products added in order) without the (..., m, k, n) intermediate. A BLAS
        matmul would accumulate in another order and change the last float32 bits.
        """
        if len(a.shape) < 2 or len(b_transpose.shape) != len(a.shape) or (
            a.shape[-1] != b_transpose.shape[-2]
        ):
            raise ShapeError(f"MultiHeadAttention.matmul: cannot multiply {a.shape} by "
                             f"{b_transpose.shape} (expected (..., m, k) and (..., k, n))")
        return ops.ordered_matmul(a, b_transpose)

    def softmax(self, logit: Tensor) -> Tensor:
        """Softmax over the last axis, shifted by the (constant) row maximum."""
        # The row maximum as a constant (detached), computed by ops so ndl.jit replays it.
        shift = ops.max(logit.detach(), axes=(len(logit.shape) - 1,), keepdims=True)
        probs = ops.exp(logit - ops.broadcast_to(shift, logit.shape))
        denom = probs.sum(axes=(len(logit.shape) - 1,)).reshape((*logit.shape[:-1], 1))
        return probs / ops.broadcast_to(denom, logit.shape)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(probs @ v, probs)``, probs (batch, heads, q_len, k_len) after dropout."""
        if len(q.shape) != 4 or len(k.shape) != 4 or len(v.shape) != 4:
            raise ShapeError(f"MultiHeadAttention: q, k, v must be (batch, heads, len, dim), "
                             f"got {q.shape}, {k.shape}, {v.shape}")
        _, _, q_len, q_dim = q.shape
        k_len, k_dim = k.shape[2], k.shape[3]
        if q_dim != k_dim or k.shape[:3] != v.shape[:3]:
            raise ShapeError(f"MultiHeadAttention: incompatible q, k, v shapes {q.shape}, "
                             f"{k.shape}, {v.shape}")
        logits = self.matmul(q, ops.transpose(k)) / np.sqrt(q_dim)
        if self.causal:
            mask = self.create_causal_mask(q_len, k_len, q.device, logits.dtype)
            logits = logits + ops.broadcast_to(mask, logits.shape)
        probs = self.dropout(self.softmax(logits))
        return self.matmul(probs, v), probs


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, T, H*D) -> (B, H, T, D)."""
    b, t, inner = x.shape
    return ops.permute(ops.reshape(x, (b, t, heads, inner // heads)), (0, 2, 1, 3))


class AttentionLayer(Module):
    """Pre-norm multi-head attention: LayerNorm, project, attend per head, project back.

    Parameters
    ----------
    q_features : int
        Features of the queries (and of keys/values unless given).
    num_head, dim_head : int
        Number of heads and features per head.
    k_features, v_features, out_features : int, optional
        Default to ``q_features``.
    dropout : float
        Dropout on the attention probabilities.
    causal : bool
        Causal masking.
    """

    def __init__(self, q_features: int, num_head: int, dim_head: int, *,
                 k_features: int | None = None, v_features: int | None = None,
                 out_features: int | None = None, dropout: float = 0.0, causal: bool = True,
                 device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        k_features = q_features if k_features is None else k_features
        v_features = q_features if v_features is None else v_features
        out_features = q_features if out_features is None else out_features
        self.q_features, self.k_features = q_features, k_features
        self.v_features, self.out_features = v_features, out_features
        self.num_head, self.dim_head = num_head, dim_head
        self.prenorm_q = LayerNorm1d(q_features, device=device, dtype=dtype)
        self.prenorm_k = LayerNorm1d(k_features, device=device, dtype=dtype)
        self.prenorm_v = LayerNorm1d(v_features, device=device, dtype=dtype)
        inner = num_head * dim_head
        self.q_projection = Linear(q_features, inner, bias=False, device=device, dtype=dtype)
        self.k_projection = Linear(k_features, inner, bias=False, device=device, dtype=dtype)
        self.v_projection = Linear(v_features, inner, bias=False, device=device, dtype=dtype)
        self.attn = MultiHeadAttention(dropout=dropout, causal=causal, device=device,
                                       dtype=dtype)
        self.out_projection = Linear(inner, out_features, bias=False, device=device,
                                     dtype=dtype)

    def forward(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None) -> Tensor:
        """``q`` (B, Tq, q_features), ``k``/``v`` (B, Tk, ...) default to ``q``."""
        k = q if k is None else k
        v = q if v is None else v
        if len(q.shape) != 3:
            raise ShapeError(f"AttentionLayer: expected (batch, length, features), got {q.shape}")
        batch, q_len, _ = q.shape
        heads = self.num_head
        Q = _split_heads(self.q_projection(self.prenorm_q(q)), heads)
        K = _split_heads(self.k_projection(self.prenorm_k(k)), heads)
        V = _split_heads(self.v_projection(self.prenorm_v(v)), heads)
        out, _ = self.attn(Q, K, V)
        out = ops.reshape(ops.permute(out, (0, 2, 1, 3)), (batch, q_len, heads * self.dim_head))
        return self.out_projection(out)


class TransformerLayer(Module):
    """A pre-norm Transformer block.

    ``x + Dropout(Attention(x))``, then ``x + Dropout(Linear2(Dropout(ReLU(Linear1(
    LayerNorm(x))))))``.
    """

    def __init__(self, q_features: int, num_head: int, dim_head: int, hidden_size: int, *,
                 dropout: float = 0.0, causal: bool = True, device: Any = None,
                 dtype: str = "float32") -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        self.attn = AttentionLayer(q_features, num_head, dim_head, dropout=dropout,
                                   causal=causal, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.layernorm = LayerNorm1d(q_features, device=device, dtype=dtype)
        self.linear1 = Linear(q_features, hidden_size, device=device, dtype=dtype)
        self.relu = ReLU()
        self.linear2 = Linear(hidden_size, q_features, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (batch, length, q_features) -> same shape."""
        x = x + self.dropout(self.attn(x))
        hidden = self.dropout(self.relu(self.linear1(self.layernorm(x))))
        return x + self.dropout(self.linear2(hidden))


class Transformer(Module):
    """A learned positional embedding followed by ``num_layers`` TransformerLayers.

    ``forward(x, h=None)`` takes (length, batch, embedding_size) input, or
    (batch, length, embedding_size) when ``batch_first``, and returns ``(y, zeros)`` with
    ``y`` in the input's layout (the zeros stand in for a recurrent state).
    """

    def __init__(self, embedding_size: int, hidden_size: int, num_layers: int, *,
                 num_head: int = 8, dim_head: int = 32, dropout: float = 0.0,
                 causal: bool = True, device: Any = None, dtype: str = "float32",
                 batch_first: bool = False, sequence_len: int = 2048) -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        self.batch_first = batch_first
        self.embedding_size = embedding_size
        self.sequence_len = sequence_len
        self.positional_embedding = Embedding(sequence_len, embedding_size, device=device,
                                              dtype=dtype)
        self.layers = Sequential(*[
            TransformerLayer(embedding_size, num_head, dim_head, hidden_size, dropout=dropout,
                             causal=causal, device=device, dtype=dtype)
            for _ in range(num_layers)
        ])

    def forward(self, x: Tensor, h: Any = None) -> tuple[Tensor, Tensor]:
        if len(x.shape) != 3:
            raise ShapeError(f"Transformer: expected a 3-D input, got {x.shape}")
        if not self.batch_first:
            x = ops.transpose(x, (0, 1))
        batch, length, _ = x.shape
        if length > self.sequence_len:
            raise ShapeError(f"Transformer: sequence of length {length} is longer than "
                             f"sequence_len={self.sequence_len}")
        positions = np.broadcast_to(np.arange(length, dtype=np.float32)[:, None],
                                    (length, batch))
        pos = Tensor(positions, device=x.device, requires_grad=False)
        x = x + ops.transpose(self.positional_embedding(pos), (0, 1))
        x = self.layers(x)
        if not self.batch_first:
            x = ops.transpose(x, (0, 1))
        return x, init.zeros_like(x)
