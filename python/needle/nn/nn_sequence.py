"""Recurrent layers (RNN, LSTM) and Embedding.

Weights are stored transposed with respect to PyTorch (``W_ih`` is (input, hidden)), with
PyTorch's gate order, so ``weight_ih.T`` copies straight across. Sequences are taken
apart with ``split`` and put together with ``stack`` (no element indexing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import init, ops
from ..autograd import Tensor, TensorOp
from ..errors import ShapeError
from ..ops.ops_select import check_ids
from .nn_basic import Module, Parameter, Sigmoid

__all__ = ["Sigmoid", "RNNCell", "RNN", "LSTMCell", "LSTM", "Embedding"]


def _uniform(bound: float, *shape: int, device: Any, dtype: str) -> Parameter:
    return Parameter(init.rand(*shape, low=-bound, high=bound, device=device, dtype=dtype,
                               requires_grad=True))


def _row(vector: Tensor, shape: tuple) -> Tensor:
    """A (n,) bias broadcast over a (batch, n) shape."""
    return ops.broadcast_to(ops.reshape(vector, (1, shape[1])), shape)


def _unstack(x: Tensor) -> list[Tensor]:
    parts = ops.split(x, 0)
    return [parts[i] for i in range(len(parts))]


def _check_input(name: str, x: Tensor, ndim: int, size: int) -> None:
    if len(x.shape) != ndim or x.shape[-1] != size:
        want = "(seq_len, batch, " if ndim == 3 else "(batch, "
        raise ShapeError(f"{name}: expected input {want}{size}), got shape {x.shape}")


def _check_state(name: str, h: Tensor, x: Tensor, num_layers: int, hidden_size: int) -> None:
    # zip() over the layers would silently drop or ignore layers of a mis-shaped state.
    want = (num_layers, x.shape[1], hidden_size)
    if tuple(h.shape) != want:
        raise ShapeError(f"{name}: expected initial state of shape {want} (num_layers, batch, "
                         f"hidden_size) for input {x.shape}, got {h.shape}")


def _check_cell_state(name: str, what: str, h: Any, x: Tensor, hidden_size: int) -> None:
    want = (x.shape[0], hidden_size)
    if tuple(np.shape(h)) != want:
        raise ShapeError(f"{name}: expected {what} of shape {want} (batch, hidden_size) for "
                         f"input {x.shape}, got {tuple(np.shape(h))}")


class _EmbeddingIndex(TensorOp):
    """The ids of a ``(seq_len, batch)`` tensor checked and laid out as an ``(n, 1)``
    integer index (no gradient). An op, not host code reading the ids, so that ``ndl.jit``
    replays it on every call's ids."""

    def __init__(self, num_embeddings: int):
        self.num_embeddings = num_embeddings

    def compute(self, x: Any) -> Any:
        xp = self.xp
        ids = check_ids("Embedding", xp.reshape(x, (-1,)), self.num_embeddings, xp)
        return xp.reshape(ids, (-1, 1))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        return (None,)


class RNNCell(Module):
    """One step of an Elman RNN: ``h' = act(x W_ih + b_ih + h W_hh + b_hh)``.

    Parameters
    ----------
    input_size, hidden_size : int
        Features of ``x`` and of the hidden state.
    bias : bool
        Learn ``bias_ih`` and ``bias_hh``.
    nonlinearity : {"tanh", "relu"}
        The activation.
    device, dtype
        Where and as what the parameters are created.

    Attributes
    ----------
    W_ih (input_size, hidden_size), W_hh (hidden_size, hidden_size), bias_ih (hidden_size,),
    bias_hh (hidden_size,) : Parameter
        All uniform in +-1/sqrt(hidden_size), drawn in this order.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.nonlinearity = nonlinearity
        k = 1.0 / np.sqrt(hidden_size)
        self.W_ih = _uniform(k, input_size, hidden_size, device=device, dtype=dtype)
        self.W_hh = _uniform(k, hidden_size, hidden_size, device=device, dtype=dtype)
        self.bias_ih = _uniform(k, hidden_size, device=device, dtype=dtype) if bias else None
        self.bias_hh = _uniform(k, hidden_size, device=device, dtype=dtype) if bias else None

    def forward(self, X: Tensor, h: Tensor | None = None) -> Tensor:
        """``X`` (batch, input_size), ``h`` (batch, hidden_size) or None (zeros)."""
        _check_input("RNNCell", X, 2, self.input_size)
        if h is None:
            # Zeros rather than skipping the product: W_hh then always gets a gradient.
            h = init.zeros(X.shape[0], self.hidden_size, device=X.device, dtype=X.dtype)
        else:
            _check_cell_state("RNNCell", "h", h, X, self.hidden_size)
        out = X @ self.W_ih + h @ self.W_hh
        if self.bias_ih is not None:
            out = out + _row(self.bias_ih, out.shape) + _row(self.bias_hh, out.shape)
        return ops.tanh(out) if self.nonlinearity == "tanh" else ops.relu(out)


class RNN(Module):
    """A stack of ``num_layers`` RNNCells run over a sequence.

    ``forward(X (seq_len, batch, input_size), h0 (num_layers, batch, hidden_size) or None)``
    returns ``(output (seq_len, batch, hidden_size), h_n (num_layers, batch, hidden_size))``:
    the last layer's state at every step, and every layer's last state.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.rnn_cells = [
            RNNCell(input_size if k == 0 else hidden_size, hidden_size, bias, nonlinearity,
                    device=device, dtype=dtype)
            for k in range(num_layers)
        ]

    def forward(self, X: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_input("RNN", X, 3, self.input_size)
        if h0 is not None:
            _check_state("RNN", h0, X, self.num_layers, self.hidden_size)
        steps = _unstack(X)
        h_init = _unstack(h0) if h0 is not None else [None] * self.num_layers
        h_last = []
        for cell, h in zip(self.rnn_cells, h_init):
            outputs = []
            for x in steps:
                h = cell(x, h)
                outputs.append(h)
            h_last.append(h)
            steps = outputs
        return ops.stack(steps, 0), ops.stack(h_last, 0)


class LSTMCell(Module):
    """One LSTM step with PyTorch's gate order (input, forget, cell, output).

    ``forward(X (batch, input_size), h=None or (h0, c0))`` returns ``(h', c')``.

    Attributes
    ----------
    W_ih (input_size, 4*hidden_size), W_hh (hidden_size, 4*hidden_size),
    bias_ih (4*hidden_size,), bias_hh (4*hidden_size,) : Parameter
        All uniform in +-1/sqrt(hidden_size), drawn in this order.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: str = "float32") -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        k = 1.0 / np.sqrt(hidden_size)
        four = 4 * hidden_size
        self.W_ih = _uniform(k, input_size, four, device=device, dtype=dtype)
        self.W_hh = _uniform(k, hidden_size, four, device=device, dtype=dtype)
        self.bias_ih = _uniform(k, four, device=device, dtype=dtype) if bias else None
        self.bias_hh = _uniform(k, four, device=device, dtype=dtype) if bias else None

    def forward(self, X: Tensor, h: tuple | None = None) -> tuple[Tensor, Tensor]:
        _check_input("LSTMCell", X, 2, self.input_size)
        batch = X.shape[0]
        if h is None:
            zeros = init.zeros(batch, self.hidden_size, device=X.device, dtype=X.dtype)
            h = (zeros, zeros)
        if not isinstance(h, (tuple, list)) or len(h) != 2:
            raise ShapeError(f"LSTMCell: h must be None or a pair (h0, c0), got "
                             f"{type(h).__name__}")
        h0, c0 = h
        _check_cell_state("LSTMCell", "h0", h0, X, self.hidden_size)
        _check_cell_state("LSTMCell", "c0", c0, X, self.hidden_size)
        gates = X @ self.W_ih + h0 @ self.W_hh
        if self.bias_ih is not None:
            gates = gates + _row(self.bias_ih, gates.shape) + _row(self.bias_hh, gates.shape)
        parts = ops.split(ops.reshape(gates, (batch, 4, self.hidden_size)), 1)
        i, f, g, o = (ops.sigmoid(parts[0]), ops.sigmoid(parts[1]), ops.tanh(parts[2]),
                      ops.sigmoid(parts[3]))
        c = f * c0 + i * g
        return o * ops.tanh(c), c


class LSTM(Module):
    """A stack of ``num_layers`` LSTMCells run over a sequence.

    ``forward(X (seq_len, batch, input_size), h=None or (h0, c0))``, with h0 and c0 of shape
    (num_layers, batch, hidden_size), returns ``(output (seq_len, batch, hidden_size),
    (h_n, c_n))``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.lstm_cells = [
            LSTMCell(input_size if k == 0 else hidden_size, hidden_size, bias,
                     device=device, dtype=dtype)
            for k in range(num_layers)
        ]

    def forward(self, X: Tensor, h: tuple | None = None) -> tuple[Tensor, tuple]:
        _check_input("LSTM", X, 3, self.input_size)
        steps = _unstack(X)
        if h is None:
            states: list = [None] * self.num_layers
        else:
            for state in h:
                _check_state("LSTM", state, X, self.num_layers, self.hidden_size)
            states = list(zip(_unstack(h[0]), _unstack(h[1])))
        h_last, c_last = [], []
        for cell, state in zip(self.lstm_cells, states):
            outputs = []
            for x in steps:
                state = cell(x, state)
                outputs.append(state[0])
            h_last.append(state[0])
            c_last.append(state[1])
            steps = outputs
        return ops.stack(steps, 0), (ops.stack(h_last, 0), ops.stack(c_last, 0))


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    ``weight`` (num_embeddings, embedding_dim) is N(0, 1). ``forward(x (seq_len, batch) of
    ids)`` returns (seq_len, batch, embedding_dim): the rows of ``weight`` picked with
    ``take_along_axis``, whose gradient scatter-adds into the picked rows (no
    (ids, num_embeddings) one-hot matrix is built).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, device: Any = None,
                 dtype: str = "float32") -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(init.randn(num_embeddings, embedding_dim, device=device,
                                           dtype=dtype, requires_grad=True))

    def forward(self, x: Tensor) -> Tensor:
        # An (n, 1) index broadcasts along the embedding dim: each id picks a whole row.
        ids = x.detach() if x.device == self.weight.device else Tensor(
            x, device=self.weight.device, requires_grad=False)
        index = _EmbeddingIndex(self.num_embeddings)(ids)
        rows = ops.take_along_axis(self.weight, index, axis=0)
        return ops.reshape(rows, tuple(x.shape) + (self.embedding_dim,))
