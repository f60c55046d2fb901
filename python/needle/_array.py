"""The thin glue between ops and the selected array backend.

Ops do their arithmetic with numpy. Under ``NEEDLE_BACKEND=nd`` an array is an
``NDArray`` whose ``_np`` attribute is a numpy view of its buffer, and a numpy
result is wrapped back without a copy; under ``np`` arrays are numpy arrays
already. Keeping this to four functions keeps every op backend-neutral.
"""

import operator
from typing import Any

import numpy as np

from .backend_selection import BACKEND, NDArray, array_api, default_device

FLOAT_KINDS = "f"


def contiguous(x: Any) -> np.ndarray:
    """A C-contiguous array with the same values (0-d stays 0-d, unlike
    ``numpy.ascontiguousarray``); no copy when it already is."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else x.copy()
NUMERIC_KINDS = "biuf"

if BACKEND == "nd":

    # A numpy view (no copy) of a backend array; attrgetter runs in C, and this is
    # called for every operand of every op.
    as_numpy = operator.attrgetter("_np")

    def wrap(r: Any, like: Any) -> Any:
        """Wrap a numpy result as a backend array on ``like``'s device."""
        return NDArray._wrap(r if r.__class__ is np.ndarray else np.asarray(r), like._device)

    def device_of(x: Any) -> Any:
        return x._device

    def from_numpy(x: np.ndarray, device: Any, dtype: Any) -> Any:
        """Build a backend array from numpy data (float32 unless ``dtype`` says float64)."""
        return array_api.array(x, dtype=dtype, device=device if device is not None else None)

else:

    def as_numpy(x: Any) -> np.ndarray:
        return x

    def wrap(r: Any, like: Any) -> Any:
        return r if r.__class__ is np.ndarray else np.asarray(r)

    _CPU = default_device()

    def device_of(x: Any) -> Any:
        return _CPU

    def from_numpy(x: np.ndarray, device: Any, dtype: Any) -> Any:
        # hw1/hw2 semantics: the input's own dtype is kept unless one is asked for.
        return np.array(x, dtype=dtype)
