"""Datasets, the DataLoader and image transforms."""

from .data_basic import DataLoader, Dataset
from .distributed_sampler import DistributedSampler
from .data_transforms import RandomCrop, RandomFlipHorizontal, Transform
from .datasets import *  # noqa: F403

__all__ = [
    "DataLoader", "Dataset", "RandomCrop", "RandomFlipHorizontal", "Transform",
    "DistributedSampler",
    "MNISTDataset", "NDArrayDataset", "DataFormatError",  # noqa: F405
    "CIFAR10Dataset", "Corpus", "Dictionary", "batchify", "get_batch",  # noqa: F405
]
