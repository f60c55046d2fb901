"""Dataset and DataLoader."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..autograd import Tensor


class Dataset:
    """An indexable collection of samples.

    Subclasses implement ``__getitem__`` (an int, slice or index array) and ``__len__``.

    Parameters
    ----------
    transforms : list of callables, optional
        Applied in order to each sample by :meth:`apply_transforms`.
    """

    def __init__(self, transforms: Sequence[Callable] | None = None) -> None:
        self.transforms = transforms

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def apply_transforms(self, x: Any) -> Any:
        """Run ``x`` through the transforms, in order."""
        if self.transforms is not None:
            for transform in self.transforms:
                x = transform(x)
        return x


class DataLoader:
    """Iterate over a dataset in mini-batches of Tensors.

    Parameters
    ----------
    dataset : Dataset
        Indexed with integer arrays: ``dataset[batch_indices]`` returns one array per field.
    batch_size : int
        Samples per batch (the last batch may be smaller).
    shuffle : bool
        Draw a fresh ``np.random.permutation`` at the start of each epoch (each ``iter``).
    device, dtype : optional
        Where and as what the batch Tensors are created (defaults as for ``Tensor``).
    sampler : iterable of int, optional
        Where the sample indices come from instead (e.g. a ``DistributedSampler``):
        iterated afresh at each ``iter`` and cut into batches of ``batch_size``; it must
        have a ``len()``. Not together with ``shuffle``, and it draws nothing from numpy's
        global RNG unless it does so itself.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool = False,
        device: Any = None,
        dtype: Any = None,
        sampler: Any = None,
    ) -> None:
        self.dataset = dataset
        self.shuffle = shuffle
        self.sampler = sampler
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive (the "
                             "sampler decides the order, e.g. DistributedSampler(shuffle=True))")
        if sampler is not None and not hasattr(sampler, "__len__"):
            raise TypeError(f"DataLoader: the sampler {type(sampler).__name__} has no len()")
        self.batch_size = 1 if batch_size is None else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if len(dataset) == 0:
            raise ValueError(f"DataLoader: the dataset {type(dataset).__name__} is empty")
        self.device = device
        self.dtype = dtype
        if not self.shuffle and sampler is None:
            self.ordering = self._split(np.arange(len(dataset)))

    def _split(self, indices: np.ndarray) -> list[np.ndarray]:
        return np.array_split(indices, range(self.batch_size, len(indices), self.batch_size))

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        if self.sampler is not None:
            indices = np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
            self.ordering = self._split(indices) if len(indices) else []
        elif self.shuffle:
            self.ordering = self._split(np.random.permutation(len(self.dataset)))
        self._next = 0
        return self

    def __next__(self) -> tuple[Tensor, ...]:
        if self._next >= len(self.ordering):
            raise StopIteration
        batch = self.dataset[self.ordering[self._next]]
        self._next += 1
        if not isinstance(batch, tuple):
            batch = (batch,)
        return tuple(
            Tensor(x, device=self.device, dtype=self.dtype, requires_grad=False) for x in batch
        )
