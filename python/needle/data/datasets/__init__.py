"""Concrete datasets (one module each)."""

from .mnist_dataset import DataFormatError, MNISTDataset, read_idx  # noqa: F401
from .ndarray_dataset import NDArrayDataset  # noqa: F401
from .cifar10_dataset import CIFAR10Dataset  # noqa: F401
from .ptb_dataset import Corpus, Dictionary, batchify, get_batch  # noqa: F401
