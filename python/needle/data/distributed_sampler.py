"""DistributedSampler: each rank's share of a data set, as in PyTorch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """The indices of one rank's shard of ``dataset``, for ``DataLoader(..., sampler=...)``.

    Every rank orders the whole data set the same way (a permutation drawn from a
    generator seeded with ``seed + epoch``, independent of numpy's global RNG, or
    ``0, 1, 2, ...`` without shuffling), then takes every ``num_replicas``-th index
    starting at its ``rank``. So the shards are disjoint, and at step ``s`` the ranks'
    batches together are the ``s``-th global batch of that order.

    Unless ``drop_last``, the order is padded by repeating its first indices until its
    length is a multiple of ``num_replicas`` (so every rank has ``ceil(n / num_replicas)``
    indices and the shards cover the data set); with ``drop_last`` the tail is cut
    instead (``floor(n / num_replicas)`` each). Call :meth:`set_epoch` at the start of
    each epoch for a new order.

    Parameters
    ----------
    dataset : Sized
        Anything with ``len()``.
    num_replicas : int, optional
        The number of ranks; ``needle.distributed.get_world_size()`` by default.
    rank : int, optional
        This process's rank; ``needle.distributed.get_rank()`` by default.
    shuffle : bool
        Permute the order (default) or keep it.
    seed : int
        Must be the same on every rank.
    drop_last : bool
        Cut the tail instead of padding.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from .. import distributed

            if num_replicas is None:
                num_replicas = distributed.get_world_size()
            if rank is None:
                rank = distributed.get_rank()
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(
                f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}"
            )
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank!r}"
            )
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (the same on every rank for the same seed)."""
        self.epoch = int(epoch)

    def global_order(self) -> np.ndarray:
        """The padded (or cut) order of the whole data set that the ranks share."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            return order[:self.total_size]
        padding = self.total_size - n
        if padding and n:
            order = np.concatenate([order, np.resize(order, padding)])
        return order

    def indices(self) -> np.ndarray:
        """This rank's indices, in order (what iterating yields)."""
        return self.global_order()[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(n={len(self.dataset)}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last}, epoch={self.epoch})")
