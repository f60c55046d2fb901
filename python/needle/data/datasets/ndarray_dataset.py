"""A dataset over in-memory arrays."""

from typing import Any

import numpy as np

from ..data_basic import Dataset


class NDArrayDataset(Dataset):
    """Rows of several equally long arrays: ``dataset[i] == (a[i], b[i], ...)``.

    Parameters
    ----------
    *arrays : array_like
        Arrays sharing their first dimension (e.g. images and labels).
    """

    def __init__(self, *arrays: Any) -> None:
        super().__init__()
        self.arrays = [np.asarray(a) for a in arrays]
        lengths = {a.shape[0] for a in self.arrays}
        if len(lengths) > 1:
            raise ValueError(f"NDArrayDataset: arrays have different lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, i: Any) -> tuple:
        return tuple(a[i] for a in self.arrays)
