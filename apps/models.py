"""The hw4 models: ResNet9 for CIFAR-10 and a word-level LanguageModel for Penn Treebank."""

from __future__ import annotations

from typing import Any

import numpy as np

import needle as ndl
import needle.nn as nn

__all__ = ["ConvBN", "ResNet9", "LanguageModel"]

np.random.seed(0)


class ConvBN(nn.Module):
    """Conv (with bias) -> BatchNorm2d -> ReLU, on NCHW tensors."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.conv = nn.Conv(in_channels, out_channels, kernel_size, stride=stride,
                            device=device, dtype=dtype)
        self.bn = nn.BatchNorm2d(out_channels, device=device, dtype=dtype)
        self.relu = nn.ReLU()

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ResNet9(nn.Module):
    """The course's ResNet9 for (N, 3, 32, 32) images: 431,946 parameters, 10 logits.

    ConvBN(3,16,7,4), ConvBN(16,32,3,2), Residual[ConvBN(32,32,3,1) x 2], ConvBN(32,64,3,2),
    ConvBN(64,128,3,2), Residual[ConvBN(128,128,3,1) x 2], Flatten, Linear(128,128), ReLU,
    Linear(128,10); parameters are drawn in that order.
    """

    def __init__(self, device: Any = None, dtype: str = "float32") -> None:
        super().__init__()

        def block(a: int, b: int, k: int, s: int) -> ConvBN:
            return ConvBN(a, b, k, s, device=device, dtype=dtype)

        self.model = nn.Sequential(
            block(3, 16, 7, 4),
            block(16, 32, 3, 2),
            nn.Residual(nn.Sequential(block(32, 32, 3, 1), block(32, 32, 3, 1))),
            block(32, 64, 3, 2),
            block(64, 128, 3, 2),
            nn.Residual(nn.Sequential(block(128, 128, 3, 1), block(128, 128, 3, 1))),
            nn.Flatten(),
            nn.Linear(128, 128, device=device, dtype=dtype),
            nn.ReLU(),
            nn.Linear(128, 10, device=device, dtype=dtype),
        )

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        return self.model(x)


class LanguageModel(nn.Module):
    """Embedding -> RNN / LSTM / Transformer -> Linear, over (seq_len, batch) token ids.

    Parameters
    ----------
    embedding_size : int
        Size of the word vectors.
    output_size : int
        Vocabulary size (embedding rows and output logits).
    hidden_size : int
        Hidden state size (the feed-forward width for the transformer).
    num_layers : int
        Stacked recurrent or transformer layers.
    seq_model : {"rnn", "lstm", "transformer"}
        The sequence model.
    seq_len : int
        Longest sequence the transformer's positional embedding covers.
    """

    def __init__(self, embedding_size: int, output_size: int, hidden_size: int,
                 num_layers: int = 1, seq_model: str = "rnn", seq_len: int = 40,
                 device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.embedding_size, self.output_size = embedding_size, output_size
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.embedding = nn.Embedding(output_size, embedding_size, device=device, dtype=dtype)
        if seq_model == "rnn":
            self.seq_model = nn.RNN(embedding_size, hidden_size, num_layers, device=device,
                                    dtype=dtype)
            features = hidden_size
        elif seq_model == "lstm":
            self.seq_model = nn.LSTM(embedding_size, hidden_size, num_layers, device=device,
                                     dtype=dtype)
            features = hidden_size
        elif seq_model == "transformer":
            self.seq_model = nn.Transformer(embedding_size, hidden_size, num_layers,
                                            device=device, dtype=dtype, sequence_len=seq_len)
            features = embedding_size
        else:
            raise ValueError(f"LanguageModel: seq_model must be 'rnn', 'lstm' or "
                             f"'transformer', got {seq_model!r}")
        self.features = features
        self.linear = nn.Linear(features, output_size, device=device, dtype=dtype)

    def forward(self, x: ndl.Tensor, h: Any = None) -> tuple[ndl.Tensor, Any]:
        """``x`` (seq_len, batch) ids -> (logits (seq_len * batch, output_size), state)."""
        seq_len, batch = x.shape
        out, h = self.seq_model(self.embedding(x), h)
        logits = self.linear(out.reshape((seq_len * batch, self.features)))
        return logits, h
