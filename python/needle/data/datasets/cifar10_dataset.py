"""CIFAR-10 from the python pickle batches (``cifar-10-batches-py``)."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from ..data_basic import Dataset
from ._download import cache_dir, fetch

__all__ = ["CIFAR10Dataset", "CIFAR10_URL", "CIFAR10_SHA256"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


def _has_files(folder: Path, names: tuple) -> bool:
    return all((folder / n).is_file() for n in names)


def _locate(base_folder: str | os.PathLike | None, names: tuple, download: bool) -> Path:
    """The folder holding ``names``: ``base_folder``, else the cache (downloading if allowed)."""
    cached = cache_dir("cifar10", "cifar-10-batches-py")
    candidates = [Path(base_folder)] if base_folder is not None else []
    for folder in candidates + [cached]:
        if _has_files(folder, names):
            return folder
    problem = "downloading is switched off"
    if download:
        try:
            archive = fetch(CIFAR10_URL, cached.parent / "cifar-10-python.tar.gz",
                            f"sha256:{CIFAR10_SHA256}")
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(cached.parent, filter="data")
            if _has_files(cached, names):
                return cached
            problem = f"{archive} does not contain {', '.join(names)}"
        except OSError as exc:
            problem = str(exc)
    where = f"{base_folder} or {cached}" if base_folder is not None else str(cached)
    raise FileNotFoundError(
        f"CIFAR10Dataset: the batch files {', '.join(names)} were not found ({problem}). "
        f"Download {CIFAR10_URL} (sha256 {CIFAR10_SHA256}), extract it and put the files "
        f"of its cifar-10-batches-py folder in {where}."
    )


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    return data, labels


class CIFAR10Dataset(Dataset):
    """CIFAR-10 images as float32 (3, 32, 32) arrays in [0, 1] with integer labels.

    Parameters
    ----------
    base_folder : path or None
        The ``cifar-10-batches-py`` folder (``data_batch_1`` ... ``data_batch_5``,
        ``test_batch``). If the files are not there, needle's cache
        (``~/.cache/needle/cifar10/cifar-10-batches-py``) is used, downloading the
        archive into it (checksum-verified) when ``download`` is True.
    train : bool
        The 50,000 training images, or the 10,000 test images.
    p : float
        Kept for the course's signature (flip probability of its skeleton); unused.
    transforms : list, optional
        Transforms applied to each image as an H x W x C array (see ``data_transforms``).
    download : bool
        Whether a missing dataset may be downloaded.
    """

    def __init__(self, base_folder: str | os.PathLike | None, train: bool, p: float = 0.5,
                 transforms: list | None = None, download: bool = True):
        super().__init__(transforms)
        self.p = p
        self.train = train
        names = TRAIN_FILES if train else TEST_FILES
        folder = _locate(base_folder, names, download)
        parts = [_load_batch(folder / n) for n in names]
        self.X = np.concatenate([x for x, _ in parts]).astype(np.float32) / np.float32(255.0)
        self.y = np.concatenate([y for _, y in parts])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, Any]:
        x, y = self.X[index], self.y[index]
        if self.transforms:
            x = self._transform(x)
        return x, y

    def _transform(self, x: np.ndarray) -> np.ndarray:
        # Transforms work on H x W x C images; the dataset stores C x H x W.
        if x.ndim == 3:
            return self.apply_transforms(x.transpose(1, 2, 0)).transpose(2, 0, 1)
        return np.stack([self._transform(img) for img in x]) if len(x) else x

    def __len__(self) -> int:
        return self.X.shape[0]
